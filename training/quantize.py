"""python -m training quantize: the shipped ONNX model in int8, for CPUs with VNNI instructions.

Static quantisation with onnxruntime: shape inference and graph clean-up (``quant_pre_process``),
then QDQ nodes with per-channel int8 weights and uint8 activations whose ranges come from a few
hundred real FER+ training faces (MinMax calibration). The result is checked on every face of the
official test split against the fp32 model it came from: top-1 agreement and the accuracy change
must stay within limits, else nothing is written. The file carries the fp32 model's metadata plus
how it was quantised and what the check measured.

    python -m training quantize [--onnx fermonitor/resources/models/fermonitor_vgg19.onnx]
        [--output PATH (default: beside it, .int8.onnx)] [--data-dir ../shared/data]
        [--calibration-faces 300]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from fermonitor.core.onnx_backend import INPUT_NAME, META_METRICS, META_QUANTIZATION, OnnxClassifier
from fermonitor.core.preprocess import normalise_faces
from fermonitor.core.resources import default_model_path
from training.data import DataPaths, load_splits
from training.engine import metrics_from_logits
from training.train import DEFAULT_DATA_DIR

log = logging.getLogger(__name__)

MIN_AGREEMENT = 0.99  # top-1 agreement with the fp32 model on the official test faces
MAX_ACCURACY_DROP = 0.003  # accuracy lost against the fp32 model, as a fraction
CALIBRATION_BATCH = 32


class QuantizeError(ValueError):
    """An int8 model that could not be made, or that does not hold up against its fp32 model."""


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("--onnx", type=Path, default=default_model_path("onnx"), help="the fp32 ONNX model")
    parser.add_argument("--output", type=Path, default=None, help="the int8 file (default: beside --onnx, .int8.onnx)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the FER2013 / FER+ data folder")
    parser.add_argument("--calibration-faces", type=int, default=300,
                        help="FER+ training faces whose activations set the int8 ranges (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="which training faces calibrate")
    return parser


def quantize_model(source: Path, output: Path, calibration: np.ndarray, mean: float, std: float) -> None:
    """Write ``source`` quantised to int8 at ``output``, calibrated on grey faces uint8 (N, S, S)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x = normalise_faces(calibration, mean, std)
    batches = [{INPUT_NAME: x[i:i + CALIBRATION_BATCH]} for i in range(0, len(x), CALIBRATION_BATCH)]

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="fermonitor-quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        quantize_static(str(prepared), str(output), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def set_metadata(path: Path, updates: dict[str, str]) -> None:
    """Add or replace ONNX metadata_props entries of the file at ``path``; drop the pre-process marker."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props if p.key != "onnx.quant.pre_process"}
    props.update(updates)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def main(args) -> dict:
    """Quantise, check on the official test faces, and write the int8 file with its figures."""
    if args.calibration_faces < 1:
        raise QuantizeError(f"--calibration-faces {args.calibration_faces} must be at least 1")
    output = args.output or args.onnx.with_name(args.onnx.name.removesuffix(".onnx") + ".int8.onnx")
    if output.resolve() == args.onnx.resolve():
        raise QuantizeError(f"--output {output} would overwrite the fp32 model {args.onnx}")
    fp32 = OnnxClassifier(args.onnx, "cpu")
    if fp32.quantization:
        raise QuantizeError(f"model file {args.onnx} is already quantised ({fp32.quantization})")
    splits = load_splits(DataPaths.in_folder(args.data_dir))
    train, test = splits["train"], splits["test"]
    chosen = np.random.default_rng(args.seed).choice(len(train), size=min(args.calibration_faces, len(train)),
                                                      replace=False)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fermonitor-quantize-", dir=output.parent) as tmp:
        candidate = Path(tmp) / output.name
        quantize_model(args.onnx, candidate, train.images[np.sort(chosen)], fp32.meta.mean, fp32.meta.std)
        set_metadata(candidate, {META_QUANTIZATION: "int8"})  # read back as int8 for the check below
        int8 = OnnxClassifier(candidate, "cpu")
        p32, p8 = fp32.predict(test.images), int8.predict(test.images)
        agreement = float(np.mean(p32.argmax(1) == p8.argmax(1)))
        acc32 = metrics_from_logits(np.log(p32 + 1e-12), test)
        acc8 = metrics_from_logits(np.log(p8 + 1e-12), test)
        report = {
            "test_faces": len(test), "top1_agreement": agreement,
            "fp32_test_accuracy": acc32["accuracy"], "int8_test_accuracy": acc8["accuracy"],
            "int8_test_macro_f1": acc8["macro_f1"], "calibration_faces": int(len(chosen)),
        }
        log.info("quantize: %s", report)
        if agreement < MIN_AGREEMENT or acc32["accuracy"] - acc8["accuracy"] > MAX_ACCURACY_DROP:
            raise QuantizeError(
                f"the int8 model agrees with {args.onnx} on {100 * agreement:.2f}% of the {len(test)} test faces "
                f"and scores {100 * acc8['accuracy']:.2f}% against {100 * acc32['accuracy']:.2f}% (needs >= "
                f"{100 * MIN_AGREEMENT:.0f}% and at most {100 * MAX_ACCURACY_DROP:.1f} points lost); nothing written")
        metrics = {**fp32.meta.metrics, "test_accuracy": acc8["accuracy"], "test_macro_f1": acc8["macro_f1"],
                   "int8_top1_agreement_with_fp32": agreement, "fp32_test_accuracy": acc32["accuracy"]}
        description = (f"int8 static QDQ: per-channel int8 weights, uint8 activations, MinMax ranges from "
                       f"{len(chosen)} FER+ training faces (seed {args.seed}); from {args.onnx.name}")
        set_metadata(candidate, {META_QUANTIZATION: description, META_METRICS: json.dumps(metrics)})
        candidate.replace(output)
    report["output"] = output.name
    print(json.dumps(report, indent=2))
    return report
