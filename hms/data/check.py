"""Validate a data folder in the Kaggle HMS layout: every file the csvs reference, read once."""
from pathlib import Path

from tqdm import tqdm

from hms import layout
from hms.data.kaggle import (DataError, check_window, eeg_path, read_eeg, read_spectrogram,
                             read_submission_csv, read_test_csv, read_train_csv, spectrogram_path)


def _csv(path, reader, problems):
    """Read an optional csv; None when absent, None plus a problem when unreadable."""
    if not path.exists():
        return None
    try:
        return reader(path)
    except DataError as e:
        problems.append(str(e))
        return None


def _jobs(root, train, test):
    """(path, kind, offset to cover or None, exact length or None) for every referenced file."""
    jobs = []
    if train is not None:
        for kind, path_of in (("eeg", eeg_path), ("spectrogram", spectrogram_path)):
            longest = train.groupby(f"{kind}_id")[f"{kind}_label_offset_seconds"].max()
            jobs += [(path_of(root, "train", i), kind, off, None) for i, off in longest.items()]
    if test is not None:
        jobs += [(eeg_path(root, "test", i), "eeg", None, layout.EEG_WINDOW)
                 for i in test["eeg_id"].unique()]
        jobs += [(spectrogram_path(root, "test", i), "spectrogram", None, layout.SPEC_WINDOW_ROWS)
                 for i in test["spectrogram_id"].unique()]
    return jobs


def _check_file(path, kind, offset, exact_length):
    """One problem line for a referenced file, or None when it is fine."""
    try:
        n = len(read_eeg(path) if kind == "eeg" else read_spectrogram(path)[0])
        if offset is not None:
            check_window(n, offset, path, kind)
    except DataError as e:
        return str(e)
    if exact_length is not None and n != exact_length:
        unit = "samples" if kind == "eeg" else "rows"
        return f"{path}: {n} {unit}, test {kind} files must hold exactly {exact_length}"
    return None


def check_data_folder(root, progress: bool = True) -> list[str]:
    """Check a Kaggle-layout folder; returns the problems found, one line each naming the file.

    Checks what is present: train.csv (and its train_eegs / train_spectrograms, long enough for the
    largest offset per id), test.csv (and its test files: exactly 50 s EEG, 10 min spectrogram),
    sample_submission.csv (eeg_ids match test.csv). A folder with neither csv is a problem.
    """
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: data folder not found"]
    problems = []
    train = _csv(root / "train.csv", read_train_csv, problems)
    test = _csv(root / "test.csv", read_test_csv, problems)
    submission = _csv(root / "sample_submission.csv", read_submission_csv, problems)
    if not (root / "train.csv").exists() and not (root / "test.csv").exists():
        problems.append(f"{root}: neither train.csv nor test.csv found")
    if test is not None and submission is not None:
        missing = sorted(set(test["eeg_id"]) - set(submission["eeg_id"]))
        extra = sorted(set(submission["eeg_id"]) - set(test["eeg_id"]))
        if missing or extra:
            problems.append(f"{root / 'sample_submission.csv'}: eeg_ids do not match test.csv "
                            f"(missing {missing[:5]}, unexpected {extra[:5]})")
    for job in tqdm(_jobs(root, train, test), desc="check files", unit="file", disable=not progress):
        problem = _check_file(*job)
        if problem:
            problems.append(problem)
    return problems
