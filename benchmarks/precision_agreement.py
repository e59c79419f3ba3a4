"""Top-1 agreement of bf16 autocast with fp32 on real FER+ faces: is reduced precision safe to use?

The issue's bar: bf16 (CPU) may be the default only where top-1 agrees with fp32 on at least 99.5%
of FER+ faces. The figure only means something for a trained model: a random network's nearly flat
outputs flip on tiny differences.

    python benchmarks/precision_agreement.py [--checkpoint PATH] [--limit N] [--split test] [--write]

On CPUs without native bf16 kernels autocast is emulated (about 20x slower than fp32): use --limit.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import ferplus_splits, machine_description, model_path, predict_all, write_section

from fermonitor.core.classifier import load_classifier

AGREEMENT_BAR = 0.995
BATCH = 32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="model to check (default: the shipped one, else a random VGG19)")
    parser.add_argument("--split", choices=("valid", "test"), default="test", help="FER+ split (official labels)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N faces (0: all)")
    parser.add_argument("--device", default="cpu", help="device to compare on (cpu: bf16; cuda: fp16)")
    parser.add_argument("--write", action="store_true", help="also write the result to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    path, note = model_path(args.checkpoint)
    split = ferplus_splits()[args.split]
    faces, labels = split.images, split.labels
    if args.limit:
        faces, labels = faces[: args.limit], labels[: args.limit]
    full = load_classifier(path, device=args.device, reduced_precision=False)
    reduced = load_classifier(path, device=args.device, reduced_precision=True)
    start = time.perf_counter()
    p32 = predict_all(full.predict, faces, BATCH)
    t32 = time.perf_counter() - start
    start = time.perf_counter()
    p16 = predict_all(reduced.predict, faces, BATCH)
    t16 = time.perf_counter() - start
    agree = float((p32.argmax(1) == p16.argmax(1)).mean())
    precision = "fp16" if full.device.type == "cuda" else "bf16"
    native = full.device.type != "cpu" or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    lines = [
        f"- Machine: {machine_description()}",
        f"- Model: {note}",
        f"- Faces: {len(faces)} FER+ {args.split} faces, official majority labels",
        f"- Top-1 agreement {precision} autocast vs fp32 on {full.device}: **{agree:.2%}** "
        f"({'meets' if agree >= AGREEMENT_BAR else 'misses'} the {AGREEMENT_BAR:.1%} bar); "
        f"largest probability difference {np.abs(p32 - p16).max():.4f}",
        f"- Accuracy fp32 {(p32.argmax(1) == labels).mean():.1%}, {precision} {(p16.argmax(1) == labels).mean():.1%}",
        f"- Time: fp32 {len(faces) / t32:.1f} faces/s, {precision} {len(faces) / t16:.1f} faces/s"
        + ("" if native else f" ({precision} is EMULATED on this CPU)"),
    ]
    print("\n".join(lines))
    if args.write:
        write_section("precision_agreement", "## Reduced-precision agreement\n\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
