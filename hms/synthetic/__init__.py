"""The simulator: writes a folder in the exact Kaggle layout with a known Bayes floor.

generator (patients, recordings, annotations -> files), signals (the brain: background and the six
patterns), recording (the recording chain: reference, offsets, drift, mains, EKG lead), labels (states ->
true vote probabilities -> votes), signal_stats (signal statistics of 50 s windows, on any Kaggle-layout
folder or EDF file), report (label and signal realism against real rows and real EEG).
"""
from hms.synthetic.generator import DEFAULT_PATIENTS, GENERATOR_VERSION, ensure_synthetic, make_synthetic, plan_dataset

__all__ = ["DEFAULT_PATIENTS", "GENERATOR_VERSION", "ensure_synthetic", "make_synthetic", "plan_dataset"]
