"""FER2013 / FER+ loading, label modes, the official counts and malformed-row errors."""

from __future__ import annotations

import csv
import gzip
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from training_helpers import DATA_DIR, ROWS_PER_USAGE, need_data

from training.data import (
    FERPLUS_FOLDERS,
    DataFormatError,
    DataPaths,
    cache_dir,
    ferplus_probability,
    load_splits,
    load_study_split,
    majority_labels,
    make_split,
    read_fer2013,
    read_fer2013new,
    read_ferplus_labels,
    vote_distribution,
)


def test_read_fer2013_decodes_the_cut_rows(small_data: Path) -> None:
    images, emotion, usage = read_fer2013(small_data / "fer2013.csv", use_cache=False)
    assert images.shape == (sum(ROWS_PER_USAGE.values()), 48, 48) and images.dtype == np.uint8
    with open(small_data / "fer2013.csv", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    for i in (0, 47, 48, len(rows) - 1):
        assert images[i].ravel().tolist() == [int(v) for v in rows[i][1].split()]
        assert emotion[i] == int(rows[i][0]) and usage[i] == rows[i][2]
    assert [int((usage == u).sum()) for u in ROWS_PER_USAGE] == list(ROWS_PER_USAGE.values())


def test_label_files_map_names_to_rows_of_their_usage(small_data: Path) -> None:
    votes_new, usages, names = read_fer2013new(small_data / "fer2013new.csv")
    per_usage = read_ferplus_labels(small_data / "ferplus", small_data / "fer2013new.csv")
    for usage, folder in FERPLUS_FOLDERS.items():
        rows, votes = per_usage[usage]
        with open(small_data / "ferplus" / folder / "label.csv", newline="") as handle:
            lines = list(csv.reader(handle))
        assert len(rows) == len(lines) > 0
        assert all(usages[r] == usage for r in rows)
        assert [names[r] for r in rows] == [line[0] for line in lines]
        assert votes.tolist() == [[int(v) for v in line[2:]] for line in lines]
        assert votes_new.shape[1] == votes.shape[1] == 10


def test_majority_rule_on_hand_made_votes() -> None:
    votes = np.array([
        [6, 2, 1, 1, 0, 0, 0, 0, 0, 0],  # single votes dropped: 6 of 8 -> neutral
        [4, 4, 0, 0, 0, 0, 0, 0, 2, 0],  # no class above half -> dropped
        [0, 0, 0, 0, 0, 0, 0, 0, 7, 3],  # unknown wins -> dropped
        [1, 1, 1, 1, 1, 1, 1, 3, 0, 0],  # only contempt survives the single-vote cut
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face
    ])
    assert majority_labels(votes).tolist() == [0, -1, -1, 7, -1]
    dist = vote_distribution(votes)
    assert np.allclose(dist[0], [0.75, 0.25, 0, 0, 0, 0, 0, 0])
    assert np.allclose(dist[4], 0.0)


def test_probability_rule_on_hand_made_votes_follows_the_ferplus_script() -> None:
    cases = [
        ([4, 3, 2, 1, 0, 0, 0, 0, 0, 0], [4 / 7, 3 / 7, 0, 0, 0, 0, 0, 0]),  # 4 + 3 reach 75% of 9: 2 left out
        ([3, 3, 2, 2, 0, 0, 0, 0, 0, 0], None),  # two tied, then two more tied: four classes
        ([6, 2, 2, 0, 0, 0, 0, 0, 0, 0], [0.6, 0.2, 0.2, 0, 0, 0, 0, 0]),  # ties taken together, three classes
        ([7, 2, 2, 2, 0, 0, 0, 0, 0, 0], None),  # majority keeps it; the tie makes four classes here
        ([6, 0, 0, 0, 0, 0, 0, 0, 3, 0], [1, 0, 0, 0, 0, 0, 0, 0]),  # unknown after an emotion is left out
        ([5, 0, 0, 0, 0, 0, 0, 0, 5, 0], None),  # unknown ties the top: half the votes is not enough
        ([0, 0, 0, 0, 0, 0, 0, 0, 8, 2], None),  # unknown first
        ([3, 0, 0, 0, 0, 0, 0, 0, 3, 4], None),  # NF first
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], None),  # only single votes
    ]
    for votes, expected in cases:
        got = ferplus_probability(np.array(votes))
        if expected is None:
            assert got is None, votes
        else:
            assert got is not None and np.allclose(got, expected), votes


def test_label_modes_on_real_rows(small_data: Path, isolated_cache: Path) -> None:
    paths = DataPaths.in_folder(small_data)
    images, _, _ = read_fer2013(paths.fer2013)
    rows, votes = read_ferplus_labels(paths.ferplus, paths.fer2013new)["Training"]
    majority = make_split(images, rows, votes, "majority")
    probability = make_split(images, rows, votes, "probability")
    argmax10 = make_split(images, rows, votes, "argmax10")
    soft = make_split(images, rows, votes, "majority", soft=True)
    assert len(argmax10) == len(rows) and argmax10.targets.shape[1] == 10
    assert 0 < len(majority) < len(argmax10) and 0 < len(probability) <= len(argmax10)
    by_row = {row: ferplus_probability(v) for row, v in zip(rows, votes, strict=True)}
    assert sorted(probability.rows) == sorted(row for row, target in by_row.items() if target is not None)
    for row, target in zip(probability.rows, probability.targets, strict=True):
        np.testing.assert_allclose(target, by_row[row])
    assert np.allclose(majority.targets.sum(1), 1) and np.allclose(probability.targets.sum(1), 1)
    assert (majority.targets.argmax(1) == majority.labels).all()
    assert (soft.labels == majority.labels).all() and (soft.targets.max(1) < 1).any()
    assert (argmax10.labels == votes.argmax(1)).all()
    assert np.array_equal(majority.images[0], images[majority.rows[0]])
    with pytest.raises(ValueError, match="label mode 'vote'"):
        make_split(images, rows, votes, "vote")


def test_the_study_footing_is_every_publictest_face_with_argmax10_labels(small_data: Path, isolated_cache: Path) -> None:
    paths = DataPaths.in_folder(small_data)
    images, _, usage = read_fer2013(paths.fer2013)
    rows, votes = read_ferplus_labels(paths.ferplus, paths.fer2013new)["PublicTest"]
    study = load_study_split(paths)
    assert study.classes[-2:] == ("unknown", "NF") and len(study) == len(rows)
    assert (usage[study.rows] == "PublicTest").all() and (study.labels == votes.argmax(1)).all()
    assert np.array_equal(study.images, images[rows])


def test_official_counts_on_the_full_files() -> None:
    need_data()
    splits = load_splits(DataPaths.in_folder(DATA_DIR))
    assert {k: len(v) for k, v in splits.items()} == {"train": 25045, "valid": 3191, "test": 3137}


def _copy(small_data: Path, target: Path) -> Path:
    (target / "ferplus").mkdir(parents=True)
    for name in ("fer2013.csv", "fer2013new.csv"):
        (target / name).write_bytes((small_data / name).read_bytes())
    for folder in FERPLUS_FOLDERS.values():
        (target / "ferplus" / folder).mkdir()
        (target / "ferplus" / folder / "label.csv").write_bytes((small_data / "ferplus" / folder / "label.csv").read_bytes())
    return target


def _edit_line(path: Path, line_no: int, edit) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line_no - 1] = edit(lines[line_no - 1])
    path.write_text("".join(lines))


@pytest.mark.parametrize(("line_no", "edit", "reason"), [
    (3, lambda s: s.replace(" ", " 7 ", 1), "2305 pixel values, expected 2304"),
    (4, lambda s: "9" + s[1:], "emotion '9' is not a label 0-6"),
    (5, lambda s: s.replace("Training", "Train"), "Usage 'Train' is not one of"),
    (6, lambda s: s.replace(" ", " x ", 1), "pixels are not whole numbers"),
    (7, lambda s: s[:2] + "300" + s[s.index(" "):], "pixel values outside 0-255"),
    (8, lambda s: s[: s.rindex(",")] + "\n", "expected 3 fields, found 2"),
    (1, lambda s: s.replace("pixels", "pixel"), "header is ['emotion', 'pixel', 'Usage'], expected emotion,pixels,Usage"),
])
def test_malformed_fer2013_row(small_data: Path, tmp_path: Path, line_no: int, edit, reason: str) -> None:
    data = _copy(small_data, tmp_path / "data")
    _edit_line(data / "fer2013.csv", line_no, edit)
    with pytest.raises(DataFormatError, match=re.escape(f"{data / 'fer2013.csv'}:{line_no}: {reason}")):
        read_fer2013(data / "fer2013.csv", use_cache=False)


@pytest.mark.parametrize(("line_no", "edit", "reason"), [
    (2, lambda s: s.replace("Training", "Testing"), "Usage 'Testing' is not one of"),
    (7, lambda s: s[: s.rindex(",")] + ",two\n", "a vote is not a whole number"),
    (8, lambda s: s[: s.rindex(",")] + ",-1\n", "a vote count is negative"),
    (9, lambda s: s[: s.rindex(",")] + "\n", "expected 12 fields, found 11"),
    (10, lambda s: s[: s.rindex(",")] + ",3000000000\n", "a vote is not a whole number"),  # beyond int32
    (1, lambda s: s.replace("Image name", "Image"), "header is ['Usage', 'Image', 'neutral',"),
])
def test_malformed_vote_row(small_data: Path, tmp_path: Path, line_no: int, edit, reason: str) -> None:
    data = _copy(small_data, tmp_path / "data")
    _edit_line(data / "fer2013new.csv", line_no, edit)
    with pytest.raises(DataFormatError, match=re.escape(f"{data / 'fer2013new.csv'}:{line_no}: {reason}")):
        read_fer2013new(data / "fer2013new.csv")


def test_malformed_label_csv_row(small_data: Path, tmp_path: Path) -> None:
    data = _copy(small_data, tmp_path / "data")
    label = data / "ferplus" / "FER2013Valid" / "label.csv"
    _edit_line(label, 2, lambda s: s[: s.rindex(",")] + ",1.5\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{label}:2: a vote is not a whole number")):
        read_ferplus_labels(data / "ferplus", data / "fer2013new.csv")
    _edit_line(label, 2, lambda s: "fer9999999.png" + s[s.index(","):])
    with pytest.raises(DataFormatError, match=re.escape(f"{label}:2: image 'fer9999999.png' is not named in")):
        read_ferplus_labels(data / "ferplus", data / "fer2013new.csv")
    training_name = (data / "ferplus" / "FER2013Train" / "label.csv").read_text().split(",", 1)[0]
    _edit_line(label, 2, lambda s: training_name + s[s.index(","):])
    with pytest.raises(DataFormatError,
                       match=re.escape(f"{label}:2: image {training_name!r} is a Training row, expected PublicTest")):
        read_ferplus_labels(data / "ferplus", data / "fer2013new.csv")
    _edit_line(label, 2, lambda s: s[: s.rindex(",")] + "\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{label}:2: expected 12 fields, found 11")):
        read_ferplus_labels(data / "ferplus", data / "fer2013new.csv")


def test_malformed_fer2013_row_with_a_pixel_too_large_for_any_integer(small_data: Path, tmp_path: Path) -> None:
    data = _copy(small_data, tmp_path / "data")
    _edit_line(data / "fer2013.csv", 7, lambda s: s.replace(" ", " 99999999999999999999999 ", 1))
    with pytest.raises(DataFormatError, match=re.escape(f"{data / 'fer2013.csv'}:7: pixels are not whole numbers")):
        read_fer2013(data / "fer2013.csv", use_cache=False)


def test_a_cut_short_download_names_the_file(small_data: Path, tmp_path: Path) -> None:
    whole = gzip.compress((small_data / "fer2013.csv").read_bytes())
    cut = tmp_path / "fer2013.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataFormatError, match=re.escape(f"{cut}: unreadable after line ") + r"\d+ .*cut short"):
        read_fer2013(cut, use_cache=False)
    header_only = tmp_path / "fer2013.csv"
    header_only.write_text("emotion,pixels,Usage\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{header_only}: no image rows after the header")):
        read_fer2013(header_only, use_cache=False)


def test_a_damaged_download_names_the_file(small_data: Path, tmp_path: Path) -> None:
    whole = gzip.compress((small_data / "fer2013.csv").read_bytes())
    damaged = tmp_path / "fer2013.csv.gz"
    damaged.write_bytes(whole[:10] + b"\xff" * 200 + whole[210:])  # the gzip header, then bytes no deflate stream has
    with pytest.raises(DataFormatError, match=re.escape(f"{damaged}: unreadable after line ") + r"\d+ .*damaged"):
        read_fer2013(damaged, use_cache=False)


def test_vote_files_saved_in_another_encoding_name_the_file_and_line(small_data: Path, tmp_path: Path) -> None:
    data = _copy(small_data, tmp_path / "data")
    votes = data / "fer2013new.csv"
    votes.write_bytes(votes.read_text(encoding="utf-8").encode("utf-16"))  # as a spreadsheet may save it
    with pytest.raises(DataFormatError, match=re.escape(f"{votes}:1: not UTF-8 text (")):
        read_fer2013new(votes)
    _copy(small_data, data.parent / "again")
    votes = data.parent / "again" / "fer2013new.csv"
    header, *rows = votes.read_bytes().splitlines(keepends=True)
    rows = rows * 4  # past the first 8 KB, which a text reader decodes at once
    rows[-1] = rows[-1].replace(b",", b",\xff", 1)  # one stray byte on the last line
    votes.write_bytes(header + b"".join(rows))
    with pytest.raises(DataFormatError, match=re.escape(f"{votes}:{len(rows) + 1}: not UTF-8 text (")):
        read_fer2013new(votes)
    label = data / "ferplus" / "FER2013Test" / "label.csv"
    label.write_bytes(b"")
    with pytest.raises(DataFormatError, match=re.escape(f"{label}: no label rows")):
        read_ferplus_labels(data / "ferplus", small_data / "fer2013new.csv")


def test_the_cache_keeps_one_file_per_source_file(small_data: Path, tmp_path: Path, isolated_cache: Path) -> None:
    data = _copy(small_data, tmp_path / "data")
    legacy = cache_dir() / "fer2013-0123456789abcdef.npz"  # a name from before CACHE_FORMAT
    legacy.write_bytes(b"old arrays")
    read_fer2013(data / "fer2013.csv")
    read_fer2013(small_data / "fer2013.csv")  # another source file: its own cache file
    os.utime(data / "fer2013.csv", ns=(0, 10**9))  # the first file changed: its arrays are decoded again
    read_fer2013(data / "fer2013.csv")
    assert len(list(isolated_cache.rglob("fer2013-*.npz"))) == 2 and not legacy.exists()


def test_image_and_vote_files_that_do_not_belong_together(small_data: Path, tmp_path: Path,
                                                         isolated_cache: Path) -> None:
    data = _copy(small_data, tmp_path / "data")
    fer = data / "fer2013.csv"
    lines = fer.read_text().splitlines(keepends=True)
    fer.write_text("".join(lines[:-3]))  # the last PrivateTest rows are missing
    with pytest.raises(DataFormatError, match=re.escape(f"{fer} has {len(lines) - 4} image rows, but ")
                       + r".*fer2013new\.csv names row \d+: the files do not belong together"):
        load_splits(DataPaths.in_folder(data), votes_source="fer2013new")
    fer.write_text("".join(lines))
    _edit_line(fer, 2, lambda s: s.replace("Training", "PublicTest"))
    with pytest.raises(DataFormatError, match=re.escape(f"{fer}:2: Usage is PublicTest, but ")
                       + r".*fer2013new\.csv puts that face in Training"):
        load_splits(DataPaths.in_folder(data))


def test_a_damaged_cache_is_decoded_again(small_data: Path, isolated_cache: Path) -> None:
    images, emotion, usage = read_fer2013(small_data / "fer2013.csv")
    (cached,) = isolated_cache.rglob("fer2013-*.npz")
    cached.write_bytes(cached.read_bytes()[:100])
    again, _, _ = read_fer2013(small_data / "fer2013.csv")
    assert np.array_equal(again, images)
    with np.load(cached) as arrays:  # written again, whole
        assert np.array_equal(arrays["usage"], usage)
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary file left


def test_missing_label_folder_says_where_and_what_else_works(small_data: Path, tmp_path: Path,
                                                             isolated_cache: Path) -> None:
    data = _copy(small_data, tmp_path / "data")
    shutil.rmtree(data / "ferplus")
    with pytest.raises(FileNotFoundError, match=re.escape(f"label files in {data / 'ferplus'}") + ".*--votes fer2013new"):
        load_splits(DataPaths.in_folder(data))
    assert len(load_splits(DataPaths.in_folder(data), votes_source="fer2013new")["test"]) > 0
