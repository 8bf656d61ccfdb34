"""Validate a data folder in the Kaggle HMS layout: every file the csvs reference, read once.

What must exist: train.csv and test.csv (only="train" or only="test" checks one of them), each with
at least one row, and every file they reference. sample_submission.csv is checked when present. The
rules are the pipeline's own, so a folder that passes trains and predicts:
- a problem (the pipeline refuses it): any reader error (hms/data/kaggle.py), a train EEG shorter
  than its largest offset + 50 s, a test EEG shorter than 50 s, sample_submission.csv eeg_ids that
  differ from test.csv's;
- a note (the pipeline repairs it, and says so): a spectrogram window that runs past its file's end
  (zero-padded in training and prediction), a test file longer than Kaggle's (prediction reads its
  first window), and every warning of the readers (inf read as NaN, all-NaN channels, dropped
  zero-vote rows).
"""
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from hms import layout
from hms.data.kaggle import (DataError, check_window, eeg_path, read_eeg, read_spectrogram,
                             read_submission_csv, read_test_csv, read_train_csv, spectrogram_path)

SPLITS = ("train", "test")


@dataclass
class FolderCheck:
    """What check_folder found: problems (fail), notes (documented repairs) and what it checked."""
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    checked: list = field(default_factory=list)


class _Notes(logging.Handler):
    """Collects the readers' warnings as notes."""

    def __init__(self, notes: list):
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record):
        self.notes.append(record.getMessage())


def _csv(path, reader, report: FolderCheck, required_unless: str | None = None):
    """Read a csv; None when absent (a problem when required: `required_unless` names the --only
    choice that makes it optional) or unreadable (a problem)."""
    if not path.exists():
        if required_unless:
            report.problems.append(f"{path}: file not found (a {required_unless}-only folder: --only {required_unless})")
        report.checked.append(f"{path.name} absent")
        return None
    try:
        frame = reader(path)
    except DataError as e:
        report.problems.append(str(e))
        report.checked.append(f"{path.name} (unreadable)")
        return None
    report.checked.append(f"{path.name} ({len(frame)} row{'' if len(frame) == 1 else 's'})")
    return frame


def _jobs(root, train, test):
    """(path, kind, offset to cover, Kaggle's exact length or None) for every referenced file."""
    jobs = []
    if train is not None:
        for kind, path_of in (("eeg", eeg_path), ("spectrogram", spectrogram_path)):
            longest = train.groupby(f"{kind}_id")[f"{kind}_label_offset_seconds"].max()
            jobs += [(path_of(root, "train", i), kind, off, None) for i, off in longest.items()]
    if test is not None:
        jobs += [(eeg_path(root, "test", i), "eeg", 0.0, layout.EEG_WINDOW) for i in test["eeg_id"].unique()]
        jobs += [(spectrogram_path(root, "test", i), "spectrogram", 0.0, layout.SPEC_WINDOW_ROWS)
                 for i in test["spectrogram_id"].unique()]
    return jobs


def _check_file(path, kind, offset, exact_length, report: FolderCheck) -> None:
    """Read one referenced file; a problem or a note when it is not fine."""
    try:
        n = len(read_eeg(path) if kind == "eeg" else read_spectrogram(path)[0])
    except DataError as e:
        report.problems.append(str(e))
        return
    try:
        check_window(n, offset, path, kind)
    except DataError as e:
        if kind == "eeg":  # an EEG window must lie inside its file
            report.problems.append(str(e))
        else:
            report.notes.append(f"{e}: zero-padded (as training and prediction do)")
        return
    if exact_length is not None and n > exact_length:
        unit = "samples" if kind == "eeg" else "rows"
        report.notes.append(f"{path}: {n} {unit}, longer than Kaggle's test {kind} files ({exact_length}): "
                            "prediction reads its first window")


def _missing_folders(jobs, report: FolderCheck) -> list:
    """One problem per referenced folder that does not exist (instead of one per file); the other jobs."""
    folders = {}
    for job in jobs:
        folders.setdefault(job[0].parent, []).append(job)
    kept = []
    for folder, folder_jobs in folders.items():
        if folder.is_dir():
            kept += folder_jobs
        else:
            report.problems.append(f"{folder}: folder not found ({len(folder_jobs)} files referenced)")
    return kept


def check_folder(root, progress: bool = True, only: str | None = None) -> FolderCheck:
    """Check a Kaggle-layout folder (see the module docstring); `only` "train" or "test" checks one part."""
    root = Path(root)
    report = FolderCheck()
    if only not in (None, *SPLITS):
        raise ValueError(f"only must be None, 'train' or 'test', got {only!r}")
    if not root.is_dir():
        report.problems.append(f"{root}: data folder not found")
        return report
    logger = logging.getLogger("hms.data")
    handler = _Notes(report.notes)
    logger.addHandler(handler)
    try:
        train, test, submission = None, None, None
        if only == "test":
            report.checked.append("train.csv skipped (--only test)")
        else:
            train = _csv(root / "train.csv", read_train_csv, report, required_unless="test")
        if only == "train":
            report.checked.append("test.csv skipped (--only train)")
        else:
            test = _csv(root / "test.csv", read_test_csv, report, required_unless="train")
            submission = _csv(root / "sample_submission.csv", read_submission_csv, report)
        if test is not None and submission is not None:
            missing = sorted(set(test["eeg_id"]) - set(submission["eeg_id"]))
            extra = sorted(set(submission["eeg_id"]) - set(test["eeg_id"]))
            if missing or extra:
                report.problems.append(f"{root / 'sample_submission.csv'}: eeg_ids do not match test.csv "
                                       f"(missing {missing[:5]}, unexpected {extra[:5]})")
        jobs = _jobs(root, train, test)
        for folder, count in Counter(job[0].parent.name for job in jobs).items():
            report.checked.append(f"{count} {folder} file{'' if count == 1 else 's'}")
        for job in tqdm(_missing_folders(jobs, report), desc="check files", unit="file", disable=not progress):
            _check_file(*job, report)
    finally:
        logger.removeHandler(handler)
    return report


def check_data_folder(root, progress: bool = True, only: str | None = None) -> list[str]:
    """The problems check_folder finds, one line each naming the file."""
    return check_folder(root, progress, only).problems
