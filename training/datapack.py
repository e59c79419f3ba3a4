"""python -m training pack / unpack: the FER+ files in one small file, for a machine without them.

A lent GPU machine reaches nothing outside it, and what travels there is capped (64 MiB); the
files users download are 96 MB with fer2013.csv gzipped. The pack holds the same information,
losslessly: each face's pixels as differences to the pixel on its left (faces are smooth, so these
compress well under xz), each row's emotion and Usage, and the vote files byte for byte. ``unpack``
writes the files users download back out, and checks that fer2013.csv is byte-identical to the
original by its SHA-256, so training there reads what it reads here.

The pack is derived from the data: keep it outside the repository (or in a git-ignored folder).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import logging
import lzma
import tarfile
from pathlib import Path

import numpy as np

from training.data import IMAGE_SIDE_PX, DataPaths, read_fer2013
from training.train import DEFAULT_DATA_DIR

log = logging.getLogger(__name__)

PACK_FORMAT = "fermonitor-ferplus-pack"
PACK_VERSION = 1
PIXELS_MEMBER = "fer2013.pixels-delta"
ROWS_MEMBER = "fer2013.rows.csv"
MANIFEST_MEMBER = "pack.json"
FER2013_HEADER = "emotion,pixels,Usage\n"
# The decimal text of each pixel value, to write fer2013.csv back quickly.
_DIGITS = np.array([str(v) for v in range(256)], dtype=object)


class PackError(ValueError):
    """A pack that cannot be written or read back exactly."""


def get_pack_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Pack the FER+ files into one small, lossless file", add_help=add_help)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder with fer2013.csv(.gz), fer2013new.csv and ferplus/")
    p.add_argument("--output", type=Path, required=True, help="the pack to write (.tar.xz); keep it out of git")
    return p


def get_unpack_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Write the FER+ files back out of a pack", add_help=add_help)
    p.add_argument("--pack", type=Path, required=True, help="a pack written by `python -m training pack`")
    p.add_argument("--output-dir", type=Path, required=True,
                   help="folder to write fer2013.csv, fer2013new.csv and ferplus/ into")
    return p


def fer2013_text(images: np.ndarray, emotion: np.ndarray, usage: np.ndarray) -> bytes:
    """fer2013.csv as the original file writes it: a header, then emotion,pixels,Usage per face."""
    lines = [FER2013_HEADER]
    for face, label, use in zip(images.reshape(len(images), -1), emotion, usage, strict=True):
        lines.append(f"{label},{' '.join(_DIGITS[face])},{use}\n")
    return "".join(lines).encode("utf-8")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _vote_files(paths: DataPaths) -> list[Path]:
    """fer2013new.csv and the FERPlus repository's label.csv files, where present."""
    if not paths.fer2013new.is_file():
        raise FileNotFoundError(f"FER+ votes file {paths.fer2013new} does not exist")
    label_files = sorted(paths.ferplus.glob("FER2013*/label.csv")) if paths.ferplus is not None else []
    return [paths.fer2013new, *label_files]


def pack(data_dir: Path, output: Path) -> dict:
    """Write the pack of ``data_dir`` to ``output``; returns its manifest."""
    paths = DataPaths.in_folder(data_dir)
    images, emotion, usage = read_fer2013(paths.fer2013)
    original = _sha256_of(paths.fer2013)
    if hashlib.sha256(fer2013_text(images, emotion, usage)).hexdigest() != original:
        raise PackError(f"{paths.fer2013}: its text is not in the original file's layout (emotion,pixels,Usage "
                        "with single spaces and \\n line ends), so a pack would not give it back byte for byte")
    deltas = np.diff(images.astype(np.int16), axis=2, prepend=0).astype(np.uint8)
    rows = io.StringIO()
    csv.writer(rows, lineterminator="\n").writerows(zip(emotion.tolist(), usage.tolist(), strict=True))
    votes = {str(path.relative_to(data_dir)): path.read_bytes() for path in _vote_files(paths)}
    manifest = {"format": PACK_FORMAT, "version": PACK_VERSION, "faces": len(images),
                "fer2013_csv_sha256": original, "files": sorted(votes)}
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with tarfile.open(tmp, "w:xz", preset=9 | lzma.PRESET_EXTREME) as tar:
        _add_bytes(tar, MANIFEST_MEMBER, json.dumps(manifest, indent=2).encode())
        _add_bytes(tar, ROWS_MEMBER, rows.getvalue().encode())
        _add_bytes(tar, PIXELS_MEMBER, deltas.tobytes())
        for name, data in votes.items():
            _add_bytes(tar, name, data)
    tmp.replace(output)
    log.info("packed %d faces and %d vote files into %s (%.1f MB)", len(images), len(votes), output,
             output.stat().st_size / 1e6)
    return manifest


def _member(tar: tarfile.TarFile, pack_path: Path, name: str) -> bytes:
    try:
        handle = tar.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise PackError(f"pack {pack_path} has no {name}")
    return handle.read()


def unpack(pack_path: Path, output_dir: Path) -> DataPaths:
    """Write the files of ``pack_path`` into ``output_dir``; fer2013.csv is checked against its SHA-256."""
    try:
        tar = tarfile.open(pack_path, "r:xz")
    except (OSError, tarfile.TarError, lzma.LZMAError) as exc:
        raise PackError(f"pack {pack_path} cannot be read as a .tar.xz file: {exc}") from exc
    with tar:
        manifest = json.loads(_member(tar, pack_path, MANIFEST_MEMBER))
        if manifest.get("format") != PACK_FORMAT or manifest.get("version") != PACK_VERSION:
            raise PackError(f"pack {pack_path} is {manifest.get('format')} version {manifest.get('version')}, "
                            f"expected {PACK_FORMAT} version {PACK_VERSION}")
        faces = int(manifest["faces"])
        deltas = np.frombuffer(_member(tar, pack_path, PIXELS_MEMBER), dtype=np.uint8)
        if deltas.size != faces * IMAGE_SIDE_PX * IMAGE_SIDE_PX:
            raise PackError(f"pack {pack_path} holds {deltas.size} pixel values, expected {faces} faces of 48x48")
        images = np.cumsum(deltas.reshape(faces, IMAGE_SIDE_PX, IMAGE_SIDE_PX), axis=2, dtype=np.uint8)
        rows = list(csv.reader(io.StringIO(_member(tar, pack_path, ROWS_MEMBER).decode())))
        emotion, usage = (np.array(column) for column in zip(*rows, strict=True))
        text = fer2013_text(images, emotion, usage)
        if hashlib.sha256(text).hexdigest() != manifest["fer2013_csv_sha256"]:
            raise PackError(f"pack {pack_path}: the rebuilt fer2013.csv does not match the original's SHA-256")
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "fer2013.csv").write_bytes(text)
        for name in manifest["files"]:
            target = output_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_member(tar, pack_path, name))
    log.info("unpacked %d faces and %d vote files into %s", faces, len(manifest["files"]), output_dir)
    return DataPaths.in_folder(output_dir)


def main_pack(args) -> dict:
    return pack(args.data_dir, args.output)


def main_unpack(args) -> DataPaths:
    return unpack(args.pack, args.output_dir)
