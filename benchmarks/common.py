"""Shared helpers of the benchmark scripts: real FER+ faces, synthetic galleries, RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
# The benchmarks run from a source checkout: training/ (not installed with the package) is imported from it.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"

GALLERY_SIZE_PX = (1280, 720)  # width, height: a 720p video-call window
GALLERY_GRID = (5, 5)  # columns, rows: 25 tiles
FACE_SIDE_PX = 96  # a 48x48 FER face upscaled 2x, about a face's size in a 5x5 720p gallery tile
BACKGROUND_BGR = (58, 62, 66)  # the plain dark grey of a video-call tile


@dataclass(frozen=True)
class Gallery:
    """A synthetic gallery image and where each face was put: ``boxes[i]`` holds ``faces[i]``."""

    image: np.ndarray  # BGR uint8 (H, W, 3)
    boxes: list[tuple[int, int, int, int]]  # x, y, w, h of each placed face


def make_gallery(faces: np.ndarray, face_side_px: int = FACE_SIDE_PX,
                 size: tuple[int, int] = GALLERY_SIZE_PX, grid: tuple[int, int] = GALLERY_GRID,
                 sides: Sequence[int] | None = None, rolls: Sequence[float] | None = None,
                 offsets: Sequence[tuple[int, int]] | None = None) -> Gallery:
    """Place up to columns x rows grey faces (N, 48, 48), upscaled, one per tile, centred.

    ``sides`` gives each face its own side (default ``face_side_px``); ``rolls`` turns each face by
    that many degrees (counter-clockwise on screen) about its centre, the corners it uncovers in the
    tile's colour, as a head tilted in a call looks; ``offsets`` shifts each face from its tile's
    centre by (dx, dy) pixels. ``boxes[i]`` is the upright square the face was drawn in.
    """
    columns, rows = grid
    width, height = size
    if len(faces) > columns * rows:
        raise ValueError(f"{len(faces)} faces do not fit a {columns}x{rows} gallery")
    tile_w, tile_h = width // columns, height // rows
    sides = [face_side_px] * len(faces) if sides is None else list(sides)
    if max(sides, default=0) > min(tile_w, tile_h):
        raise ValueError(f"face side {max(sides)} px does not fit a {tile_w}x{tile_h} px tile")
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND_BGR
    boxes = []
    for i, face in enumerate(faces):
        side = sides[i]
        col, row = i % columns, i // columns
        dx, dy = offsets[i] if offsets is not None else (0, 0)
        x = min(max(0, col * tile_w + (tile_w - side) // 2 + dx), width - side)
        y = min(max(0, row * tile_h + (tile_h - side) // 2 + dy), height - side)
        big = cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        region = image[y : y + side, x : x + side]
        if rolls is not None and rolls[i] != 0:
            turn = cv2.getRotationMatrix2D((side / 2, side / 2), float(rolls[i]), 1.0)
            mask = cv2.warpAffine(np.full((side, side), 255, np.uint8), turn, (side, side)) > 127
            region[mask] = cv2.warpAffine(big, turn, (side, side), flags=cv2.INTER_LINEAR)[mask]
        else:
            region[:] = big
        boxes.append((x, y, side, side))
    return Gallery(image, boxes)


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def inside(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> float:
    """The share of ``inner``'s area inside ``outer``."""
    ix = max(0, min(inner[0] + inner[2], outer[0] + outer[2]) - max(inner[0], outer[0]))
    iy = max(0, min(inner[1] + inner[3], outer[1] + outer[3]) - max(inner[1], outer[1]))
    return ix * iy / (inner[2] * inner[3]) if inner[2] * inner[3] else 0.0


def match_boxes(truth: list[tuple[int, int, int, int]], found: list[tuple[int, int, int, int]],
                min_iou: float, min_inside: float | None = None) -> list[int | None]:
    """For each true box, the index of the found box matched to it (greedy by IoU), or None.

    With ``min_inside``, a found box lying at least that share inside a true box also matches it
    (after the IoU matches): a photo in which the face is smaller than the photo.
    """
    score = (lambda t, f: max(iou(t, f), min_iou if inside(f, t) >= min_inside else 0.0)) if min_inside else iou
    pairs = sorted(((score(t, f), ti, fi) for ti, t in enumerate(truth) for fi, f in enumerate(found)), reverse=True)
    matched: list[int | None] = [None] * len(truth)
    used: set[int] = set()
    for score, ti, fi in pairs:
        if score < min_iou:
            break
        if matched[ti] is None and fi not in used:
            matched[ti] = fi
            used.add(fi)
    return matched


def ferplus_splits() -> dict:
    """The official FER+ splits (majority labels from the FERPlus label.csv files)."""
    from training.data import DataPaths, load_splits

    if not DATA_DIR.is_dir():
        raise SystemExit(f"FER+ data not found at {DATA_DIR} (see training/README.md)")
    return load_splits(DataPaths.in_folder(DATA_DIR))


def model_path(checkpoint: str | None) -> tuple[Path, str]:
    """The checkpoint to measure and a description: the given one, the shipped one, or a random VGG19.

    A random model times like a trained one (speed does not depend on the weights), but its
    accuracy and its precision agreement mean nothing.
    """
    from fermonitor.core.resources import default_model_path

    if checkpoint is not None:
        return Path(checkpoint), f"checkpoint {checkpoint}"
    shipped = default_model_path()
    if shipped.is_file():
        return shipped, f"shipped model {shipped.relative_to(REPO_ROOT)}"
    import torch

    from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta, save_checkpoint
    from fermonitor.core.models import build_model

    torch.manual_seed(0)
    path = Path(tempfile.mkdtemp(prefix="fermonitor-bench-")) / "random_vgg19.pt"
    save_checkpoint(path, build_model("vgg19"), ModelMeta(arch="vgg19", classes=FERPLUS_CLASSES))
    return path, "a RANDOM untrained VGG19 (no shipped model yet): timings hold, accuracies do not"


def machine_description() -> str:
    """CPU model, cores, load and library versions: what the figures were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads, OpenCV {cv2.__version__}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.machine()}; load average at start {load}; "
            f"process niceness {os.nice(0) if hasattr(os, 'nice') else 'n/a'}")


def rate(step: Callable[[], int], seconds: float, warmup: int = 1) -> tuple[float, int]:
    """Items per second of ``step`` (which returns how many items it handled), over >= ``seconds``."""
    for _ in range(warmup):
        step()
    done, start = 0, time.perf_counter()
    while True:
        done += step()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed, done


def predict_all(predict: Callable[[np.ndarray], np.ndarray], faces: np.ndarray, batch: int = 32) -> np.ndarray:
    """``predict`` over all ``faces``, ``batch`` at a time, in order."""
    return np.concatenate([predict(faces[i : i + batch]) for i in range(0, len(faces), batch)])


def machine_kind() -> str:
    """The CPU's maker and family with the instructions that decide this project's speeds: "AMD EPYC,
    AVX512-BF16, VNNI", "Intel Xeon, AMX, AVX512-BF16, VNNI", "AMD EPYC, AVX2 only", ..."""
    from fermonitor.core.cpu import cpu_flags

    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        names = []
    words = re.sub(r"\((R|TM)\)", "", names[0] if names else platform.processor() or platform.machine()).split()
    family = " ".join(w for w in words[:2] if w.lower() not in ("processor", "cpu"))
    flags = cpu_flags()
    features = [label for label, present in (
        ("AMX", "amx_tile" in flags), ("AVX512-BF16", "avx512_bf16" in flags),
        ("VNNI", bool({"avx512_vnni", "avx_vnni"} & flags))) if present]
    if not features:
        features = ["AVX2 only"] if "avx2" in flags else ["no AVX2"] if flags else []
    return ", ".join([family, *features])


def write_section(name: str, markdown: str) -> None:
    """Replace (or add) the section of benchmarks/RESULTS.md that ``name`` wrote on this kind of
    machine (:func:`machine_kind`), keeping the others: each kind's figures stay side by side."""
    kind = machine_kind()
    start, end = f"<!-- {name} on {kind}:start -->", f"<!-- {name} on {kind}:end -->"
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    block = f"{start}\n_Written by `benchmarks/{name}.py` on {stamp}, on {kind}._\n\n{markdown.strip()}\n{end}"
    text = RESULTS_PATH.read_text() if RESULTS_PATH.is_file() else (
        "# Benchmark results\n\nFigures printed by the scripts in benchmarks/, one section per script and kind of "
        "machine; a script rewrites its own section for the machine it runs on (`make bench` runs them all).\n")
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:  # after the same script's sections from other machines, else at the end
        ends = list(re.finditer(rf"<!-- {re.escape(name)} on [^>]*:end -->", text))
        at = ends[-1].end() if ends else len(text.rstrip())
        text = text[:at] + "\n\n" + block + text[at:]
    RESULTS_PATH.write_text(text.rstrip() + "\n")
