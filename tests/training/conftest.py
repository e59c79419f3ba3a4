"""A small real FER+ data folder cut from ../shared/data, and an isolated decode cache."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from training_helpers import DATA_DIR, FOLDERS, ROWS_PER_USAGE, need_data

from training.data import read_fer2013


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the first rows of each Usage, in the layout users download.

    fer2013.csv and fer2013new.csv keep the same rows in the same order (they join by position);
    each label.csv keeps the lines whose image name the full fer2013new.csv maps to a kept row, so
    names still map to the right faces through the cut fer2013new.csv.
    """
    need_data()
    out = tmp_path_factory.mktemp("fer-small")
    with open(DATA_DIR / "fer2013new.csv", newline="") as handle:
        new_rows = list(csv.reader(handle))
    new_header, new_rows = new_rows[0], new_rows[1:]
    kept: list[int] = []
    taken = dict.fromkeys(ROWS_PER_USAGE, 0)
    for row_index, row in enumerate(new_rows):
        usage = row[0]
        if taken[usage] < ROWS_PER_USAGE[usage]:
            taken[usage] += 1
            kept.append(row_index)
    kept_set = set(kept)
    assert len(new_rows) == 35887, "fer2013new.csv should hold 35,887 rows"
    # The decoded arrays of the full file (cached by the loader) are written back as text rows:
    # streaming 300 MB of text through gzip is too slow on a busy machine.
    images, emotion, usage = read_fer2013(DATA_DIR / "fer2013.csv.gz")
    with open(out / "fer2013.csv", "w", newline="") as dst:
        dst.write("emotion,pixels,Usage\n")
        for i in kept:
            dst.write(f"{emotion[i]},{' '.join(map(str, images[i].ravel().tolist()))},{usage[i]}\n")
    with open(out / "fer2013new.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(new_header)
        writer.writerows(new_rows[i] for i in kept)
    full_row_of = {row[1]: i for i, row in enumerate(new_rows) if row[1]}  # later rows win, as in the loader
    for folder in FOLDERS.values():
        (out / "ferplus" / folder).mkdir(parents=True)
        with open(DATA_DIR / "ferplus" / folder / "label.csv", newline="") as src, \
                open(out / "ferplus" / folder / "label.csv", "w", newline="") as dst:
            writer = csv.writer(dst)
            writer.writerows(fields for fields in csv.reader(src) if full_row_of.get(fields[0], -1) in kept_set)
    return out


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Decoded-array caches of small test files go to a temporary folder, not the user's cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Deterministic, quiet CPU use: one torch thread during the test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
