"""Read FER2013 images and FER+ votes as users download them, and build labelled splits.

Files (see ../shared/data/PROVENANCE.md):

- ``fer2013.csv`` or ``fer2013.csv.gz``: header ``emotion,pixels,Usage``; 35,887 rows of 48x48 pixels.
- ``fer2013new.csv``: FER+ votes, row-aligned with fer2013.csv.
- ``FER2013{Train,Valid,Test}/label.csv`` of the FERPlus repository: the older vote revision that
  defines the official benchmark. Names map to rows through fer2013new.csv's ``Image name``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs

from fermonitor.core.checkpoint import FERPLUS_CLASSES

log = logging.getLogger(__name__)

IMAGE_SIDE_PX = 48
VOTE_COLUMNS: tuple[str, ...] = FERPLUS_CLASSES + ("unknown", "NF")
USAGES = ("Training", "PublicTest", "PrivateTest")
# The FERPlus folders and the FER2013 Usage value each of them holds.
FERPLUS_FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
LABEL_MODES = ("majority", "probability", "argmax10")
CACHE_FORMAT = 1  # raise when _decode_fer2013 changes what it returns: older cached arrays are then ignored


class DataFormatError(ValueError):
    """A data file that does not have the expected format; the message names file, line and reason."""


@dataclass(frozen=True)
class FaceSplit:
    """Labelled faces of one split.

    ``images`` uint8 (N, 48, 48); ``labels`` int64 (N,) hard labels; ``targets`` float32 (N, C)
    label distributions (one-hot in majority and argmax10 modes); ``rows`` the FER2013 row index
    of every face.
    """

    images: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    rows: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> FaceSplit:
        return FaceSplit(self.images[index], self.labels[index], self.targets[index], self.rows[index], self.classes)


def cache_dir() -> Path:
    """Where decoded arrays are cached: the user cache folder, never the repository."""
    path = Path(platformdirs.user_cache_dir("fermonitor")) / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a UTF-8 CSV file; text that cannot be read names the file and its line."""

    def text_lines(handle) -> Iterator[str]:  # decoded one line at a time, so a bad byte names its own line
        for line_no, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(f"{path}:{line_no}: not UTF-8 text ({exc.reason} at byte {exc.start}); the "
                                      "file was saved in another encoding or damaged: download it again") from exc

    with open(path, "rb") as handle:
        reader = csv.reader(text_lines(handle))
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as exc:
            raise DataFormatError(f"{path}:{reader.line_num}: not a CSV row ({exc})") from exc


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_fer2013(path: str | Path, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode fer2013.csv(.gz) into images uint8 (N, 48, 48), emotion int8 (N,) and usage (N,) str.

    Raises
    ------
    DataFormatError
        For a wrong header or a malformed row, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FER2013 file {path} does not exist")
    stat = path.stat()
    # One cache file per source file: named by its path, keyed by its size, time and the decoding.
    source_key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    content_key = hashlib.sha1(f"{stat.st_size}|{stat.st_mtime_ns}|{CACHE_FORMAT}".encode()).hexdigest()[:10]
    cached = cache_dir() / f"fer2013-{source_key}-{content_key}.npz"
    if use_cache and cached.is_file():
        try:
            with np.load(cached) as arrays:
                return arrays["images"], arrays["emotion"], arrays["usage"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("cached arrays %s are unreadable (%s); decoding %s again", cached, exc, path)
    result = _decode_fer2013(path)
    if use_cache:
        # A name of this process's own: two processes decoding at once must not share a file.
        tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, images=result[0], emotion=result[1], usage=result[2])
        tmp.replace(cached)
        _remove_stale_cache(cached, source_key)
    return result


def _remove_stale_cache(current: Path, source_key: str) -> None:
    """Delete the arrays of an earlier version of the same file, and those of the old unversioned names."""
    # Final names only: another process's temporary file (NAME.PID.tmp.npz) is left alone.
    stale = [p for p in current.parent.glob(f"fer2013-{source_key}-*.npz") if p != current and "." not in p.stem]
    stale += [p for p in current.parent.glob("fer2013-*.npz") if p.stem.count("-") == 1 and len(p.stem) == 24]
    for path in stale:
        try:
            path.unlink()
        except OSError as exc:  # another process may be reading it; a later run removes it
            log.info("stale cache %s not removed (%s)", path, exc)


def _decode_fer2013(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images: list[np.ndarray] = []
    emotions: list[int] = []
    usages: list[str] = []
    line_no = 1
    with _open_text(path) as handle:  # a file that cannot be opened at all raises its own OSError
        try:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header != ["emotion", "pixels", "Usage"]:
                raise DataFormatError(f"{path}:1: header is {header}, expected emotion,pixels,Usage")
            for line_no, row in enumerate(reader, start=2):
                images.append(_parse_fer2013_row(path, line_no, row))
                emotions.append(int(row[0]))
                usages.append(row[2])
        except (OSError, EOFError, UnicodeDecodeError, csv.Error, zlib.error) as exc:
            raise DataFormatError(f"{path}: unreadable after line {line_no} ({exc}); the file is damaged or cut "
                                  "short: download it again") from exc
    if not images:
        raise DataFormatError(f"{path}: no image rows after the header")
    return np.stack(images), np.array(emotions, dtype=np.int8), np.array(usages)


def _parse_fer2013_row(path: Path, line_no: int, row: list[str]) -> np.ndarray:
    """One row's 48x48 image; the emotion and Usage fields are checked too."""
    if len(row) != 3:
        raise DataFormatError(f"{path}:{line_no}: expected 3 fields, found {len(row)}")
    emotion, pixels, usage = row
    if not emotion.isdigit() or int(emotion) > 6:
        raise DataFormatError(f"{path}:{line_no}: emotion {emotion!r} is not a label 0-6")
    if usage not in USAGES:
        raise DataFormatError(f"{path}:{line_no}: Usage {usage!r} is not one of {', '.join(USAGES)}")
    try:
        values = np.array(pixels.split(), dtype=np.int64)
    except (ValueError, OverflowError) as exc:
        raise DataFormatError(f"{path}:{line_no}: pixels are not whole numbers ({exc})") from exc
    if values.size != IMAGE_SIDE_PX * IMAGE_SIDE_PX:
        raise DataFormatError(f"{path}:{line_no}: {values.size} pixel values, expected 2304")
    if values.min() < 0 or values.max() > 255:
        raise DataFormatError(f"{path}:{line_no}: pixel values outside 0-255")
    return values.astype(np.uint8).reshape(IMAGE_SIDE_PX, IMAGE_SIDE_PX)


def _parse_votes(path: Path, line_no: int, fields: list[str]) -> np.ndarray:
    if len(fields) != len(VOTE_COLUMNS):
        raise DataFormatError(f"{path}:{line_no}: expected {len(VOTE_COLUMNS)} vote columns, found {len(fields)}")
    try:
        votes = np.array([int(v) for v in fields], dtype=np.int32)
    except (ValueError, OverflowError) as exc:
        raise DataFormatError(f"{path}:{line_no}: a vote is not a whole number ({exc})") from exc
    if votes.min() < 0:
        raise DataFormatError(f"{path}:{line_no}: a vote count is negative")
    return votes


def read_fer2013new(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read fer2013new.csv: votes int32 (N, 10), usage (N,) str and image names (N,), by row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FER+ votes file {path} does not exist")
    votes, usages, names = [], [], []
    rows = _csv_rows(path)
    header = next(rows, (1, None))[1]
    expected = ["Usage", "Image name", *VOTE_COLUMNS]
    if header != expected:
        raise DataFormatError(f"{path}:1: header is {header}, expected {','.join(expected)}")
    for line_no, row in rows:
        if len(row) != len(expected):
            raise DataFormatError(f"{path}:{line_no}: expected {len(expected)} fields, found {len(row)}")
        if row[0] not in USAGES:
            raise DataFormatError(f"{path}:{line_no}: Usage {row[0]!r} is not one of {', '.join(USAGES)}")
        usages.append(row[0])
        names.append(row[1])
        votes.append(_parse_votes(path, line_no, row[2:]))
    if not votes:
        raise DataFormatError(f"{path}: no vote rows after the header")
    return np.stack(votes), np.array(usages), names


def read_ferplus_labels(folder: str | Path, fer2013new: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the FERPlus repository's label.csv files: per usage, (FER2013 rows, votes (N, 10)).

    ``folder`` holds FER2013Train, FER2013Valid and FER2013Test. Image names map to rows through
    fer2013new.csv; where a name occurs twice there, the later row is the one FERPlus keeps on disk.
    """
    folder = Path(folder)
    _, usages, names = read_fer2013new(fer2013new)
    row_of = {name: row for row, name in enumerate(names) if name}  # later rows overwrite earlier ones
    result = {}
    for usage, sub in FERPLUS_FOLDERS.items():
        path = folder / sub / "label.csv"
        if not path.is_file():
            raise FileNotFoundError(f"FER+ label file {path} does not exist")
        rows, votes = [], []
        for line_no, fields in _csv_rows(path):
            if len(fields) != 2 + len(VOTE_COLUMNS):
                raise DataFormatError(f"{path}:{line_no}: expected {2 + len(VOTE_COLUMNS)} fields, found {len(fields)}")
            name = fields[0]
            if name not in row_of:
                raise DataFormatError(f"{path}:{line_no}: image {name!r} is not named in {fer2013new}")
            row = row_of[name]
            if usages[row] != usage:
                raise DataFormatError(f"{path}:{line_no}: image {name!r} is a {usages[row]} row, expected {usage}")
            rows.append(row)
            votes.append(_parse_votes(path, line_no, fields[2:]))
        if not votes:
            raise DataFormatError(f"{path}: no label rows")
        result[usage] = (np.array(rows, dtype=np.int64), np.stack(votes))
    return result


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """The official FER+ majority rule, per row: the emotion index 0-7, or -1 when dropped.

    Votes of 1 are dropped; a face is kept when its top class holds more than half of the remaining
    votes and that class is an emotion, not unknown or NF.
    """
    cleaned = np.where(votes > 1, votes, 0)
    total = cleaned.sum(axis=1)
    top = cleaned.argmax(axis=1)
    top_votes = cleaned.max(axis=1)
    keep = (top_votes > 0.5 * total) & (top < len(FERPLUS_CLASSES))
    return np.where(keep, top, -1)


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """Per row, the distribution of the emotion votes (votes of 1 dropped) over the 8 emotions."""
    cleaned = np.where(votes > 1, votes, 0)[:, : len(FERPLUS_CLASSES)].astype(np.float32)
    total = cleaned.sum(axis=1, keepdims=True)
    return np.divide(cleaned, total, out=np.zeros_like(cleaned), where=total > 0)


def ferplus_probability(votes: np.ndarray) -> np.ndarray | None:
    """One face's soft target under the FERPlus script's probability rule, or None when it drops the face.

    Votes of 1 are dropped. The largest vote counts are then taken, ties together, until they hold 75%
    of the votes or three classes are taken; unknown or NF stops the taking and counts only when it is
    the first class taken. The face is dropped when the taken classes hold no more than half of the
    votes, when ties took more than three, or when the top taken class is unknown or NF.
    """
    remaining = np.where(votes > 1, votes, 0).astype(np.float64)
    total = remaining.sum()
    taken = np.zeros_like(remaining)
    taken_votes, count, emotion_first = 0.0, 0, True
    while taken_votes < 0.75 * total and count < 3 and emotion_first:
        top = remaining.max()
        for i in np.flatnonzero(remaining == top):
            taken[i], remaining[i] = top, 0
            taken_votes += top
            count += 1
            if i >= len(FERPLUS_CLASSES):
                emotion_first = False
                if taken.sum() > top:  # emotions came first: unknown or NF is not one of the taken
                    taken[i] = 0
                    count -= 1
                break
    if taken.sum() <= 0.5 * total or count > 3 or taken.argmax() >= len(FERPLUS_CLASSES):
        return None
    emotions = taken[: len(FERPLUS_CLASSES)]
    return (emotions / emotions.sum()).astype(np.float32)


def make_split(images: np.ndarray, rows: np.ndarray, votes: np.ndarray, mode: str, soft: bool = False) -> FaceSplit:
    """Label the faces at ``rows`` from their ``votes`` in one of :data:`LABEL_MODES`.

    - majority: the official rule; dropped faces are left out; one-hot targets over 8 emotions.
    - probability: the FERPlus script's probability rule (:func:`ferplus_probability`); targets are
      the distribution over the emotions it keeps, labels its argmax.
    - argmax10: the original study's rule, argmax of all 10 vote columns, every row kept.

    ``soft`` replaces majority mode's one-hot targets by the faces' vote distributions.
    """
    if mode == "majority":
        labels = majority_labels(votes)
        keep = labels >= 0
        classes = FERPLUS_CLASSES
        targets = vote_distribution(votes)[keep] if soft else np.eye(len(classes), dtype=np.float32)[labels[keep]]
    elif mode == "probability":
        per_face = [ferplus_probability(row) for row in votes]
        keep = np.array([t is not None for t in per_face], dtype=bool)
        classes = FERPLUS_CLASSES
        targets = np.array([t for t in per_face if t is not None], dtype=np.float32).reshape(-1, len(classes))
        labels = np.full(len(votes), -1)
        labels[keep] = targets.argmax(axis=1)
    elif mode == "argmax10":
        labels = votes.argmax(axis=1)
        keep = np.ones(len(votes), dtype=bool)
        classes = VOTE_COLUMNS
        targets = np.eye(len(classes), dtype=np.float32)[labels]
    else:
        raise ValueError(f"label mode {mode!r} is not one of {', '.join(LABEL_MODES)}")
    kept_rows = rows[keep]
    return FaceSplit(images[kept_rows], labels[keep].astype(np.int64), targets.astype(np.float32), kept_rows, classes)


@dataclass(frozen=True)
class DataPaths:
    """Where the downloaded files are."""

    fer2013: Path
    fer2013new: Path
    ferplus: Path | None = None

    @classmethod
    def in_folder(cls, folder: str | Path) -> DataPaths:
        folder = Path(folder)
        fer = folder / "fer2013.csv"
        if not fer.is_file():
            fer = folder / "fer2013.csv.gz"
        ferplus = folder / "ferplus"
        return cls(fer, folder / "fer2013new.csv", ferplus if ferplus.is_dir() else None)


def _check_rows_match(paths: DataPaths, image_usage: np.ndarray,
                      per_usage: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """The votes name FER2013 rows by position: each must exist in fer2013.csv with the same Usage."""
    for usage, (rows, _) in per_usage.items():
        if len(rows) and rows.max() >= len(image_usage):
            raise DataFormatError(f"{paths.fer2013} has {len(image_usage)} image rows, but {paths.fer2013new} "
                                  f"names row {rows.max() + 1}: the files do not belong together")
        wrong = rows[image_usage[rows] != usage]
        if len(wrong):
            raise DataFormatError(f"{paths.fer2013}:{wrong[0] + 2}: Usage is {image_usage[wrong[0]]}, but "
                                  f"{paths.fer2013new} puts that face in {usage}: the files do not belong together")


def _faces_and_votes(paths: DataPaths, votes_source: str) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """All FER2013 faces, and per usage the rows and votes that ``votes_source`` gives them."""
    images, _, image_usage = read_fer2013(paths.fer2013)
    if votes_source == "label_csv":
        if paths.ferplus is None:
            raise FileNotFoundError(f"the official protocol needs the FERPlus label files in "
                                    f"{paths.fer2013.parent / 'ferplus'} (FER2013Train/label.csv, ...); "
                                    "--votes fer2013new reads the newer votes instead")
        per_usage = read_ferplus_labels(paths.ferplus, paths.fer2013new)
    elif votes_source == "fer2013new":
        votes, usages, _ = read_fer2013new(paths.fer2013new)
        per_usage = {u: (np.flatnonzero(usages == u), votes[usages == u]) for u in USAGES}
    else:
        raise ValueError(f"votes source {votes_source!r} is neither label_csv nor fer2013new")
    _check_rows_match(paths, image_usage, per_usage)
    return images, per_usage


def load_study_split(paths: DataPaths, votes_source: str = "label_csv") -> FaceSplit:
    """The original study's test footing: PublicTest, every face, labelled by the argmax of all 10
    vote columns (unknown and NF are classes). Its figures were measured on such labels."""
    images, per_usage = _faces_and_votes(paths, votes_source)
    return make_split(images, *per_usage["PublicTest"], "argmax10")


def load_splits(paths: DataPaths, train_mode: str = "majority", votes_source: str = "label_csv",
                soft_targets: bool = False) -> dict[str, FaceSplit]:
    """Train, valid and test splits.

    ``votes_source`` "label_csv" reads the FERPlus label.csv files (the official protocol);
    "fer2013new" reads the newer votes. Valid and test are always in majority mode (the protocol);
    train uses ``train_mode`` (with vote-distribution targets when ``soft_targets``).
    """
    images, per_usage = _faces_and_votes(paths, votes_source)
    splits = {
        "train": make_split(images, *per_usage["Training"], train_mode, soft_targets),
        "valid": make_split(images, *per_usage["PublicTest"], "majority"),
        "test": make_split(images, *per_usage["PrivateTest"], "majority"),
    }
    log.info("FER+ splits: %s", {k: len(v) for k, v in splits.items()})
    return splits
