"""python -m training export: the fp16 shipping checkpoint and a self-describing ONNX model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from fermonitor.core.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from fermonitor.core.onnx_backend import INPUT_NAME as ONNX_INPUT
from fermonitor.core.onnx_backend import OUTPUT_NAME as ONNX_OUTPUT
from fermonitor.core.preprocess import normalise_faces
from training.data import DataPaths, FaceSplit, load_splits
from training.engine import evaluate
from training.train import DEFAULT_DATA_DIR, portable_record

log = logging.getLogger(__name__)

ONNX_OPSET = 17
# Largest |onnxruntime - torch| logit difference accepted on real faces.
MAX_ABS_DIFF = 1e-4
VERIFY_FACES = 64  # real FER+ test faces used to check the export
HALF_BESIDE_ONNX = "beside-onnx"


class ExportError(ValueError):
    """An export that could not be written or does not reproduce the torch model."""


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Export a checkpoint for shipping (fp16 .pt and ONNX)", add_help=add_help)
    p.add_argument("--checkpoint", type=Path, required=True, help="a fermonitor checkpoint (.pt)")
    p.add_argument("--onnx", type=Path, required=True, help="where to write the ONNX model")
    p.add_argument("--half", nargs="?", const=HALF_BESIDE_ONNX, default=None,
                   help="also write the fp16 shipping checkpoint (metrics kept), at the path given or beside "
                        "the ONNX file with .pt; the ONNX model is then exported from those fp16 weights")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="FER+ data for checking the export on real faces")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the onnxruntime check and the official test metrics (not for shipping)")
    return p


def onnx_metadata(meta: ModelMeta) -> dict[str, str]:
    """The checkpoint's self-description as ONNX metadata_props (strings; lists and dicts as JSON)."""
    return {
        "format": "fermonitor-onnx",
        "arch": meta.arch,
        "classes": json.dumps(list(meta.classes)),
        "input_size": str(meta.input_size),
        "mean": repr(float(meta.mean)),
        "std": repr(float(meta.std)),
        "crop_margin": repr(float(meta.crop_margin)),
        "input_name": ONNX_INPUT,
        "output_name": ONNX_OUTPUT,
        "input_description": "float32 (N, 1, H, W): grey face / 255, minus mean, divided by std",
        "metrics": json.dumps(meta.metrics),
    }


def store_exact_fp16(proto) -> int:
    """Store each float32 initializer that fp16 holds exactly as fp16, cast back to float32 on load.

    Weights from an fp16 checkpoint all qualify, which halves the file; any other value stays float32,
    so the model computes exactly what it did. onnxruntime folds the casts away when it loads the model.
    Returns how many initializers were converted.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    initializers, casts = [], []
    for init in graph.initializer:
        values = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        if values is None or not np.array_equal(values.astype(np.float16).astype(np.float32), values):
            initializers.append(init)
            continue
        stored = numpy_helper.from_array(values.astype(np.float16), f"{init.name}_fp16")
        initializers.append(stored)
        casts.append(helper.make_node("Cast", [stored.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}_to_float"))
    nodes = casts + list(graph.node)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)


def export_onnx(model: nn.Module, meta: ModelMeta, path: str | Path) -> Path:
    """Write ``model`` as ONNX: input ``faces`` float32 (N, 1, S, S) normalised, output ``logits``,
    a dynamic batch axis, and the checkpoint's description in ``metadata_props``.

    Batch norm is kept as its own node (not folded into the convolutions), so weights from an fp16
    checkpoint stay exactly representable and are stored as fp16 (``store_exact_fp16``).
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    example = torch.zeros(2, 1, meta.input_size, meta.input_size)
    tmp = path.with_suffix(path.suffix + ".tmp")
    # The TorchScript exporter is chosen on purpose: it needs no onnxscript and handles this plain
    # conv net exactly; torch flags it as legacy with a DeprecationWarning, which is expected here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export",
                                category=DeprecationWarning)
        torch.onnx.export(model, (example,), str(tmp), input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
                          opset_version=ONNX_OPSET, dynamo=False,
                          # PRESERVE on an eval-mode model exports inference without folding
                          # batch norm into the conv weights, which would make them inexact in fp16;
                          # onnxruntime does that folding, in float32, when it loads the model.
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    proto = onnx.load(str(tmp))
    converted = store_exact_fp16(proto)
    log.info("ONNX: %d weight tensors stored as fp16", converted)
    del proto.metadata_props[:]
    for key, value in onnx_metadata(meta).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata_props of an ONNX model as a dict."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in proto.metadata_props}


def max_onnx_difference(model: nn.Module, onnx_path: str | Path, faces: np.ndarray, mean: float, std: float) -> float:
    """Largest absolute logit difference between onnxruntime and torch (fp32, CPU) on uint8 faces."""
    import onnxruntime

    x = normalise_faces(faces, mean, std)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (ort_logits,) = session.run([ONNX_OUTPUT], {ONNX_INPUT: x})
    with torch.inference_mode():
        torch_logits = model.float().eval().cpu()(torch.from_numpy(x)).numpy()
    if ort_logits.shape != torch_logits.shape:
        raise ExportError(f"ONNX model {onnx_path} gives logits {ort_logits.shape}, torch gives {torch_logits.shape}")
    return float(np.abs(ort_logits - torch_logits).max())


def official_test_metrics(model: nn.Module, meta: ModelMeta, test: FaceSplit) -> dict:
    """The model's figures on the official FER+ test split, as ``test_*`` entries for its metrics."""
    scored = evaluate(model.float(), test, SimpleNamespace(mean=meta.mean, std=meta.std, amp=False),
                      torch.device("cpu"))
    return {"test_accuracy": scored["accuracy"], "test_macro_f1": scored["macro_f1"], "test_faces": len(test),
            "test_recall": dict(zip(test.classes, scored["recall"], strict=True))}


def main(args) -> dict:
    """Write the ONNX model (and with --half the fp16 checkpoint first); check ONNX against torch.

    With the check (the default) both files also carry the exported weights' metrics on the
    official test split, so the shipped model describes how well it does.
    """
    shipped, shipped_meta = load_checkpoint(args.checkpoint)
    # A checkpoint trained before paths were recorded portably must not carry them into the shipped files.
    shipped_meta = dataclasses.replace(shipped_meta, metrics=portable_record(shipped_meta.metrics),
                                       train_args=portable_record(shipped_meta.train_args))
    report: dict = {}
    half_path = None
    if args.half is not None:
        half_path = args.onnx.with_suffix(".pt") if args.half == HALF_BESIDE_ONNX else Path(args.half)
        if half_path.resolve() == args.checkpoint.resolve():
            raise ExportError(f"--half {half_path} would overwrite the input checkpoint {args.checkpoint}")
        # Score and export the fp16 weights the app ships, so every file holds the same numbers.
        shipped = shipped.half().float()
    test = load_splits(DataPaths.in_folder(args.data_dir))["test"] if args.verify else None
    if test is not None:
        shipped_meta = dataclasses.replace(
            shipped_meta, metrics={**shipped_meta.metrics, **official_test_metrics(shipped, shipped_meta, test)})
        report["test_accuracy"] = shipped_meta.metrics["test_accuracy"]
    if half_path is not None:
        half_path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(half_path, shipped, shipped_meta, half=True)
        report.update(checkpoint=str(half_path), checkpoint_mb=round(half_path.stat().st_size / 1e6, 2))
    export_onnx(shipped, shipped_meta, args.onnx)
    report.update(onnx=str(args.onnx), onnx_mb=round(args.onnx.stat().st_size / 1e6, 2))
    if test is not None:
        faces = test.images[:VERIFY_FACES]
        diff = max_onnx_difference(shipped, args.onnx, faces, shipped_meta.mean, shipped_meta.std)
        report["max_abs_logit_diff"] = diff
        report["faces_checked"] = len(faces)
        if diff > MAX_ABS_DIFF:
            raise ExportError(f"ONNX model {args.onnx} differs from torch by {diff:.2e} on FER+ faces "
                              f"(limit {MAX_ABS_DIFF:.0e})")
    log.info("export: %s", report)
    return report
