"""Speed of the expression classifier and of the whole analysis step, side by side in one run.

Prints faces/s of ``clf.predict`` at batch 1, 8 and 32 in fp32 and bf16, with channels_last on and
off, beside the original study's way (one face at a time, fp32, plain NCHW model, autograd on),
and analysis steps/s of ``Pipeline.process`` on a 25-face 1280x720 gallery of real FER+ faces.
A figure, not a test: run it niced on an otherwise idle machine for numbers worth comparing.

    python benchmarks/bench_classifier.py [--checkpoint PATH] [--seconds 3] [--no-bf16] [--write]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

import numpy as np
import torch
from common import (
    ferplus_splits,
    machine_description,
    make_gallery,
    model_path,
    rate,
    write_section,
)

from fermonitor.core.classifier import ExpressionClassifier, load_classifier
from fermonitor.core.classifier_base import FaceBatchClassifier
from fermonitor.core.detection import detector_from_settings
from fermonitor.core.pipeline import Pipeline
from fermonitor.core.preprocess import normalise_faces
from fermonitor.core.resources import default_model_path
from fermonitor.core.results import Frame
from fermonitor.core.settings import Settings

BATCH_SIZES = (1, 8, 32)
BF16_SECONDS = 1.0  # emulated bf16 on CPUs without native kernels is ~20x slower: time it briefly


def nchw_predict(clf: ExpressionClassifier, faces: np.ndarray) -> np.ndarray:
    """``clf.predict``'s own steps with the input and weights left in NCHW (channels_last off)."""
    with torch.inference_mode():
        x = torch.from_numpy(normalise_faces(faces, clf.meta.mean, clf.meta.std))
        return torch.softmax(clf.model(x).float(), dim=1).numpy()


def original_study_predict(model: torch.nn.Module, face: np.ndarray, mean: float, std: float) -> np.ndarray:
    """One face at a time, fp32, NCHW, autograd left on: how the original study ran its model."""
    x = (torch.from_numpy(face).float() / 255.0 - mean) / std
    return torch.softmax(model(x[None, None]), dim=1).detach().numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="model to time (default: the shipped one, else a random VGG19)")
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timing per fp32 configuration, s")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 rows")
    parser.add_argument("--write", action="store_true", help="also write the table to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    path, model_note = model_path(args.checkpoint)
    splits = ferplus_splits()
    faces = splits["test"].images[:64]
    gallery_faces = splits["test"].images[:25]

    lines = [f"Machine: {machine_description()}", f"Model: {model_note}", ""]
    print("\n".join(lines), flush=True)
    rows: list[tuple[str, str, str, float, int]] = []

    def record(method: str, batch: str, precision: str, per_s: float, count: int) -> None:
        rows.append((method, batch, precision, per_s, count))
        print(f"{method:<42} batch {batch:>3}  {precision:<24} {per_s:8.1f} faces/s  ({count} faces)", flush=True)

    clf = load_classifier(path, device="cpu", reduced_precision=False)
    for batch in BATCH_SIZES:
        x = faces[:batch]
        record("clf.predict", str(batch), "fp32, channels_last", *rate(lambda x=x: len(clf.predict(x)), args.seconds))
    plain = load_classifier(path, device="cpu", reduced_precision=False)
    plain.model = plain.model.to(memory_format=torch.contiguous_format)
    for batch in BATCH_SIZES:
        x = faces[:batch]
        record("clf.predict steps, NCHW", str(batch), "fp32, NCHW",
               *rate(lambda x=x: len(nchw_predict(plain, x)), args.seconds))
    if not args.no_bf16:
        bf16 = load_classifier(path, device="cpu", reduced_precision=True)
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        label = "bf16 autocast" + ("" if native else " (EMULATED)")
        for batch in BATCH_SIZES:
            x = faces[:batch]
            record("clf.predict", str(batch), label, *rate(lambda x=x: len(bf16.predict(x)), BF16_SECONDS))

    from fermonitor.core.checkpoint import load_checkpoint

    model, meta = load_checkpoint(path)  # a fresh fp32 NCHW model, as the original study ran it
    index = iter(range(10**9))
    record("original study: one face at a time, autograd", "1", "fp32, NCHW",
           *rate(lambda: len(original_study_predict(model, faces[next(index) % len(faces)], meta.mean, meta.std)),
                 args.seconds))

    gallery = make_gallery(gallery_faces)
    app_clf = load_classifier(None if path == default_model_path() else path, device="cpu")
    app_precision = app_clf.runtime
    pipeline = Pipeline(app_clf, detector_from_settings(Settings().analysis), Settings())
    step = iter(range(10**9))
    seen: list[int] = []

    def analyse() -> int:
        i = next(step)
        result = pipeline.process(Frame(gallery.image, i * 0.5, i, datetime.now(timezone.utc)))
        seen.append(len(result.faces))
        return 1

    steps_per_s, steps = rate(analyse, args.seconds, warmup=2)
    timings = _stage_times(pipeline, gallery.image, app_clf)
    print(f"\nPipeline.process ({app_precision}) on a 25-face 1280x720 gallery: {steps_per_s:.2f} steps/s ({steps} steps, "
          f"{seen[-1]} faces classified per step)")
    print("  per step: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in timings))
    print("  (detect: one whole-frame search; the pipeline searches near the tracked faces between them)")

    table = ["| method | batch | precision | faces/s | faces timed |", "| --- | ---: | --- | ---: | ---: |"]
    table += [f"| {m} | {b} | {p} | {r:.1f} | {n} |" for m, b, p, r, n in rows]
    report = "\n".join([
        "## Classifier and pipeline speed", "",
        *(f"- {line}" for line in lines if line), "",
        *table, "",
        f"Whole pipeline (`Pipeline.process`: {pipeline.detector.name} detection (whole frame or near the tracked faces), tracking, 25 crops, one {app_precision} batch "
        "(the app's choice on this CPU), smoothing) "
        f"on a 25-face 1280x720 gallery of real FER+ PrivateTest faces: **{steps_per_s:.2f} steps/s** "
        f"({steps} steps, {seen[-1]} faces classified per step; per step "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in timings) + ").",
    ])
    if args.write:
        write_section("bench_classifier", report)
    return 0


def _stage_times(pipeline: Pipeline, image: np.ndarray, clf: FaceBatchClassifier, repeats: int = 5) -> list[tuple[str, float]]:
    """Median milliseconds of the step's stages, timed one by one on the same gallery."""
    detect, crop, predict = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        faces = pipeline.detector.detect(image)
        t1 = time.perf_counter()
        crops = np.stack([pipeline.crop(image, face) for face in faces]) if faces else np.zeros((0, 48, 48), np.uint8)
        t2 = time.perf_counter()
        clf.predict(crops)
        t3 = time.perf_counter()
        detect.append(t1 - t0)
        crop.append(t2 - t1)
        predict.append(t3 - t2)
    return [(name, 1000 * float(np.median(values)))
            for name, values in (("detect", detect), ("crop", crop), ("predict", predict))]


if __name__ == "__main__":
    raise SystemExit(main())
