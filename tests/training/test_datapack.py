"""The FER+ pack for a lent GPU machine gives the downloaded files back byte for byte."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from training import datapack
from training.data import DataPaths, load_splits

FILES = ("fer2013.csv", "fer2013new.csv", "ferplus/FER2013Train/label.csv", "ferplus/FER2013Valid/label.csv",
         "ferplus/FER2013Test/label.csv")


def test_unpack_gives_back_the_files_byte_for_byte(small_data: Path, isolated_cache: Path, tmp_path: Path) -> None:
    pack = tmp_path / "ferplus.tar.xz"
    manifest = datapack.main_pack(datapack.get_pack_parser().parse_args(
        ["--data-dir", str(small_data), "--output", str(pack)]))
    assert manifest["faces"] == sum(1 for _ in open(small_data / "fer2013.csv")) - 1
    assert pack.stat().st_size < (small_data / "fer2013.csv").stat().st_size / 2

    out = tmp_path / "unpacked"
    datapack.main_unpack(datapack.get_unpack_parser().parse_args(["--pack", str(pack), "--output-dir", str(out)]))
    for name in FILES:
        assert (out / name).read_bytes() == (small_data / name).read_bytes(), name
    ours, theirs = load_splits(DataPaths.in_folder(out)), load_splits(DataPaths.in_folder(small_data))
    assert np.array_equal(ours["test"].images, theirs["test"].images)


def test_a_file_not_in_the_original_layout_is_not_packed(small_data: Path, isolated_cache: Path,
                                                         tmp_path: Path) -> None:
    data = tmp_path / "crlf"
    shutil.copytree(small_data, data)
    text = (data / "fer2013.csv").read_bytes()
    (data / "fer2013.csv").write_bytes(text.replace(b"\n", b"\r\n"))
    with pytest.raises(datapack.PackError, match=r"crlf/fer2013\.csv: its text is not in the original file's layout"):
        datapack.pack(data, tmp_path / "pack.tar.xz")
    assert not (tmp_path / "pack.tar.xz").exists()


def test_a_damaged_or_foreign_pack_is_refused(small_data: Path, isolated_cache: Path, tmp_path: Path) -> None:
    not_xz = tmp_path / "notes.tar.xz"
    not_xz.write_text("not a pack")
    with pytest.raises(datapack.PackError, match=r"notes\.tar\.xz cannot be read as a \.tar\.xz file"):
        datapack.unpack(not_xz, tmp_path / "out")

    pack = tmp_path / "good.tar.xz"
    datapack.pack(small_data, pack)
    tampered = tmp_path / "tampered.tar.xz"
    with tarfile.open(pack, "r:xz") as src, tarfile.open(tampered, "w:xz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == datapack.ROWS_MEMBER:  # one face's emotion changed
                data = b"6" + data[1:] if data[:1] != b"6" else b"5" + data[1:]
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(datapack.PackError, match="rebuilt fer2013.csv does not match the original's SHA-256"):
        datapack.unpack(tampered, tmp_path / "out")
    assert not (tmp_path / "out" / "fer2013.csv").exists()

    foreign = tmp_path / "foreign.tar.xz"
    with tarfile.open(foreign, "w:xz") as dst:
        data = json.dumps({"format": "something-else", "version": 3}).encode()
        info = tarfile.TarInfo(datapack.MANIFEST_MEMBER)
        info.size = len(data)
        dst.addfile(info, io.BytesIO(data))
    with pytest.raises(datapack.PackError, match="is something-else version 3, expected fermonitor-ferplus-pack"):
        datapack.unpack(foreign, tmp_path / "out")
