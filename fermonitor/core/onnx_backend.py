"""Expression classifier on onnxruntime: the torch-free path the standalone executable runs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from fermonitor.core.checkpoint import CheckpointError, ModelMeta, check_meta
from fermonitor.core.classifier_base import FaceBatchClassifier
from fermonitor.core.errors import one_line
from fermonitor.core.preprocess import normalise_faces

log = logging.getLogger(__name__)

# Names fixed by training/export.py: one float32 input (N, 1, S, S), normalised; raw logits out.
INPUT_NAME = "faces"
OUTPUT_NAME = "logits"
# metadata_props keys written by the export; classes is a JSON list, metrics a JSON object.
META_CLASSES = "classes"
META_MEAN = "mean"
META_STD = "std"
META_INPUT_SIZE = "input_size"
META_ARCH = "arch"
META_CROP_MARGIN = "crop_margin"
META_METRICS = "metrics"
# Written by training/quantize.py on the int8 file: how it was quantised (absent: fp32 weights).
META_QUANTIZATION = "quantization"

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def onnxruntime_available() -> bool:
    """Whether onnxruntime can be imported here."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def pick_providers(device: str, available: list[str]) -> list[str]:
    """onnxruntime execution providers for a device name.

    Parameters
    ----------
    device
        "auto" (CUDA when onnxruntime has its CUDA provider, else the CPU), "cpu" (or "cpu:N",
        as torch names it), "cuda" or "cuda:N".
    available
        ``onnxruntime.get_available_providers()``.

    Raises
    ------
    ValueError
        For a device onnxruntime cannot run on here.
    """
    if device == "auto":
        return [CUDA_PROVIDER, CPU_PROVIDER] if CUDA_PROVIDER in available else [CPU_PROVIDER]
    if device == "cpu" or device.startswith("cpu:"):
        return [CPU_PROVIDER]
    if device == "cuda" or device.startswith("cuda:"):
        if CUDA_PROVIDER not in available:
            raise ValueError(
                f"device {device!r} was asked for but this onnxruntime has no CUDA provider "
                f"(available: {', '.join(available)})"
            )
        return [CUDA_PROVIDER, CPU_PROVIDER]
    raise ValueError(f"device {device!r} is not supported by the onnx backend: use auto, cpu or cuda")


def meta_from_onnx(path: Path, props: dict[str, str]) -> ModelMeta:
    """Read the model description that training/export.py stores in the ONNX metadata_props.

    Raises
    ------
    CheckpointError
        When a key is missing or holds a wrong value, or the input size or normalisation is
        unusable (:func:`fermonitor.core.checkpoint.check_meta`).
    """
    try:
        raw_classes = props[META_CLASSES]
        classes = json.loads(raw_classes) if raw_classes.lstrip().startswith("[") else raw_classes.split(",")
        if not classes or not all(isinstance(c, str) and c.strip() for c in classes):
            raise ValueError(f"classes {raw_classes!r} is not a list of names")
        metrics = json.loads(props[META_METRICS]) if META_METRICS in props else {}
        meta = ModelMeta(
            arch=props.get(META_ARCH, "unknown"),
            classes=tuple(c.strip() for c in classes),
            input_size=int(props[META_INPUT_SIZE]),
            mean=float(props[META_MEAN]),
            std=float(props[META_STD]),
            crop_margin=float(props.get(META_CROP_MARGIN, 0.0)),
            metrics=metrics if isinstance(metrics, dict) else {},
        )
    except KeyError as exc:
        raise CheckpointError(
            f"model file {path} lacks metadata {exc.args[0]!r}: export it with `python -m training export`"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"model file {path} has wrong metadata ({exc})") from exc
    check_meta(meta, path)
    return meta


def cpu_session_options(threads: int = 0):
    """onnxruntime session options for the app's models: ``threads`` intra-op threads (0: one per
    core), quiet logs, and threads that sleep when a run ends instead of spinning.

    The detector and the classifier run one after the other on the same cores; onnxruntime's
    default spin-wait keeps one session's threads busy while the next one runs, which cost a
    25-face gallery step a third of its time (benchmarks/bench_classifier.py).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # onnxruntime's own warnings would flood the app log
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxClassifier(FaceBatchClassifier):
    """Runs an exported expression model on batches of grey faces with onnxruntime.

    Parameters
    ----------
    path
        An ONNX file written by training/export.py.
    device
        See :func:`pick_providers`.

    Raises
    ------
    CheckpointError
        When the file is missing, not an ONNX model, lacks the input, output or metadata the
        export writes, or its input shape disagrees with the input size in its metadata.
    """

    def __init__(self, path: str | Path, device: str = "auto") -> None:
        import onnxruntime as ort  # imported here so that the torch path never needs it

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"model file {self.path} does not exist")
        providers = pick_providers(device, ort.get_available_providers())
        options = cpu_session_options()
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise CheckpointError(f"model file {self.path} is not a readable ONNX model ({one_line(exc)})") from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise CheckpointError(
                f"model file {self.path} has inputs {sorted(inputs)} and outputs {sorted(outputs)}, "
                f"expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}"
            )
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.meta = meta_from_onnx(self.path, props)
        self.quantization = props.get(META_QUANTIZATION, "")
        shape = list(inputs[INPUT_NAME].shape)
        size = self.meta.input_size
        # Named or None dimensions take any length; a fixed one must be what the metadata feeds.
        if len(shape) != 4 or any(isinstance(dim, int) and dim != want for dim, want in zip(shape[1:], (1, size, size), strict=True)):
            raise CheckpointError(
                f"model file {self.path} takes input {INPUT_NAME!r} of shape ({', '.join(map(str, shape))}), "
                f"but its metadata says input size {size}: expected (N, 1, {size}, {size})"
            )
        batch_dim = shape[0]
        # An export with a fixed batch size is run in chunks of that size; a named or None
        # dimension means any batch size.
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self.providers = tuple(self.session.get_providers())
        log.info("loaded %s (%s) with onnxruntime on %s", self.path, self.meta.arch, ", ".join(self.providers))

    @property
    def runtime(self) -> str:
        """What runs the model, for the log and the session JSON."""
        precision = "int8" if self.quantization else "fp32"
        return f"onnxruntime {precision} on {', '.join(p.removesuffix('ExecutionProvider') for p in self.providers)}"

    def _probabilities(self, faces: np.ndarray) -> np.ndarray:
        x = normalise_faces(faces, self.meta.mean, self.meta.std)
        if self.fixed_batch is None:
            logits = self._run(x)
        else:
            logits = np.concatenate([self._run_padded(x[i:i + self.fixed_batch]) for i in range(0, len(x), self.fixed_batch)])
        return _softmax(logits)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0])

    def _run_padded(self, chunk: np.ndarray) -> np.ndarray:
        assert self.fixed_batch is not None
        missing = self.fixed_batch - len(chunk)
        padded = np.concatenate([chunk, np.zeros((missing, *chunk.shape[1:]), dtype=chunk.dtype)]) if missing else chunk
        return self._run(padded)[:len(chunk)]


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, returned as float32 (what torch.softmax gives to 1e-7)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
