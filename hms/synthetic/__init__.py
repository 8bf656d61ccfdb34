"""The simulator: writes a folder in the exact Kaggle layout with a known Bayes floor.

generator (patients, recordings, annotations -> files), signals (background and the six patterns),
labels (states -> true vote probabilities -> votes), report (realism figures against real label rows).
"""
from hms.synthetic.generator import DEFAULT_PATIENTS, GENERATOR_VERSION, ensure_synthetic, make_synthetic, plan_dataset

__all__ = ["DEFAULT_PATIENTS", "GENERATOR_VERSION", "ensure_synthetic", "make_synthetic", "plan_dataset"]
