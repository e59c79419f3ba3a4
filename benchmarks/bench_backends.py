"""torch against onnxruntime fp32 and int8 on the CPU, side by side in one run: which should run?

Times ``predict`` of the shipped model on real FER+ test faces at batch 1, 8 and 32 with torch in
fp32 (channels_last, the app's CPU path without native bf16), torch with bf16 autocast where the
CPU has native bf16, onnxruntime on the exported ONNX file (the standalone executable's backend)
and onnxruntime on its int8 file (``python -m training quantize``; fast where the CPU has VNNI).
The original study's way, one face at a time in fp32 (torch, batch 1), is the reference of the
"vs" column. The configurations take turns over several rounds, so a busy machine slows them
alike; the median round is reported. Then every backend classifies every test face: top-1
agreement with torch fp32, and accuracy. A figure, not a test.

    python benchmarks/bench_backends.py [--seconds 1.5] [--rounds 3] [--write]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import numpy as np
import torch
from common import ferplus_splits, machine_description, model_path, predict_all, rate, write_section

from fermonitor.core.classifier import load_classifier, resolve_backend
from fermonitor.core.cpu import cpu_has_vnni
from fermonitor.core.device import cpu_has_fast_bf16
from fermonitor.core.onnx_backend import OnnxClassifier

BATCH_SIZES = (1, 8, 32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="torch checkpoint (default: the shipped one); its .onnx must lie beside it")
    parser.add_argument("--seconds", type=float, default=1.5, help="timing per configuration and round, s")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--write", action="store_true", help="also write the table to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    path, note = model_path(args.checkpoint)
    onnx_path = path.with_suffix(".onnx")
    if not onnx_path.is_file():
        parser.error(f"no ONNX model {onnx_path} beside {path}: export one with `python -m training export`")
    test = ferplus_splits()["test"]
    backends: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "torch fp32 (channels_last)": load_classifier(path, device="cpu", reduced_precision=False).predict,
        "onnxruntime fp32": OnnxClassifier(onnx_path, "cpu").predict,
    }
    if cpu_has_fast_bf16():
        backends["torch bf16 autocast"] = load_classifier(path, device="cpu", reduced_precision=True).predict
    int8_path = path.with_name(path.stem + ".int8.onnx")
    if int8_path.is_file():
        backends["onnxruntime int8"] = OnnxClassifier(int8_path, "cpu").predict
    lines = [f"Machine: {machine_description()}", f"Model: {note} and {onnx_path.name}, {int8_path.name} beside it",
             f"Native bf16 on this CPU: {'yes' if cpu_has_fast_bf16() else 'no (torch runs fp32 here)'}; "
             f"VNNI: {'yes' if cpu_has_vnni() else 'no'}; the app's choice for the shipped model here: "
             f"{resolve_backend('auto', None, 'cpu')}"]
    print("\n".join(lines), flush=True)

    rates: dict[tuple[str, int], list[float]] = {}
    for round_no in range(args.rounds):
        for batch in BATCH_SIZES:
            for name, predict in backends.items():
                faces = test.images[:batch]
                per_s, _ = rate(lambda predict=predict, faces=faces: len(predict(faces)), args.seconds)
                rates.setdefault((name, batch), []).append(per_s)
                print(f"round {round_no + 1}: {name:<28} batch {batch:>2}: {per_s:7.1f} faces/s", flush=True)

    baseline = "torch fp32 (channels_last)"
    one_face = statistics.median(rates[(baseline, 1)])  # the study's way: one face at a time, fp32
    table = ["| backend | batch | faces/s (median) | vs one face fp32 |", "| --- | ---: | ---: | ---: |"]
    for batch in BATCH_SIZES:
        for name in backends:
            median = statistics.median(rates[(name, batch)])
            table.append(f"| {name} | {batch} | {median:.1f} | {median / one_face:.2f}x |")

    reference = predict_all(backends[baseline], test.images)
    agreement = [f"On the {len(test)} official test faces: torch fp32 accuracy "
                 f"{(reference.argmax(1) == test.labels).mean():.2%}"]
    for name, predict in backends.items():
        if name != baseline:
            p = predict_all(predict, test.images)
            agreement.append(f"{name}: top-1 agreement with torch fp32 **{(p.argmax(1) == reference.argmax(1)).mean():.2%}**, "
                             f"accuracy {(p.argmax(1) == test.labels).mean():.2%}, largest probability difference "
                             f"{np.abs(p - reference).max():.2e}")
    print("\n" + "\n".join(table + [""] + agreement))
    if args.write:
        write_section("bench_backends", "\n".join([
            "## Backends on the CPU: torch, onnxruntime fp32 and int8", "",
            *(f"- {line}" for line in lines),
            f"- {args.rounds} rounds of {args.seconds} s per configuration, taking turns; torch with "
            f"{torch.get_num_threads()} threads, onnxruntime with its default thread pool", "",
            *table, "",
            *(f"- {line}" for line in agreement),
        ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
