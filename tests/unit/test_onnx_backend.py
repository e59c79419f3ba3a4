"""The onnxruntime backend: same probabilities as torch on real FER+ faces, backend choice, no torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from shared_data import DATA_DIR, REPO_ROOT

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from fermonitor.core import device as device_module  # noqa: E402
from fermonitor.core import resources  # noqa: E402
from fermonitor.core.checkpoint import (  # noqa: E402
    FERPLUS_CLASSES,
    CheckpointError,
    ModelMeta,
    load_checkpoint,
    save_checkpoint,
)
from fermonitor.core.classifier import ExpressionClassifier, load_classifier  # noqa: E402
from fermonitor.core.models import build_model  # noqa: E402
from fermonitor.core.onnx_backend import OnnxClassifier, pick_providers  # noqa: E402

FER2013 = DATA_DIR / "fer2013.csv.gz"
N_FACES = 96
MAX_ABS_DIFF = 1e-4  # the bound on probabilities, torch fp32 vs onnxruntime
META = ModelMeta(arch="vgg19", classes=FERPLUS_CLASSES, input_size=48, mean=0.507, std=0.255,
                 crop_margin=0.1, metrics={"test_accuracy": 0.5})


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random VGG19 (non-trivial batch-norm statistics) as a checkpoint and its ONNX export."""
    from training.export import export_onnx

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = build_model("vgg19", num_classes=len(FERPLUS_CLASSES)).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    pt_path, onnx_path = folder / "fermonitor_vgg19.pt", folder / "fermonitor_vgg19.onnx"
    # As shipped: an fp16 checkpoint, and the ONNX export (fp16 storage) made from those weights.
    save_checkpoint(pt_path, model, META, half=True)
    shipped, meta = load_checkpoint(pt_path)
    export_onnx(shipped, meta, onnx_path)
    return pt_path, onnx_path


@pytest.fixture(scope="module")
def fer_faces() -> np.ndarray:
    if not FER2013.is_file():
        pytest.skip(f"real FER+ data not found at {FER2013}")
    from training.data import read_fer2013

    images, _, usage = read_fer2013(FER2013)
    return np.ascontiguousarray(images[usage == "PrivateTest"][:N_FACES])


def test_backends_give_the_same_probabilities_on_fer_faces(model_files: tuple[Path, Path], fer_faces: np.ndarray) -> None:
    pt_path, onnx_path = model_files
    with_torch = load_classifier(pt_path, device="cpu", reduced_precision=False, backend="torch")
    with_onnx = load_classifier(onnx_path, device="cpu", backend="onnx")
    p_torch, p_onnx = with_torch.predict(fer_faces), with_onnx.predict(fer_faces)
    assert p_onnx.dtype == np.float32 and p_onnx.shape == (N_FACES, len(FERPLUS_CLASSES))
    np.testing.assert_allclose(p_onnx.sum(axis=1), 1.0, atol=1e-5)
    # The random model must not be flat, or any two outputs would agree.
    assert np.ptp(p_torch, axis=0).max() > 1e-3
    assert np.abs(p_torch - p_onnx).max() <= MAX_ABS_DIFF
    # Batch of one and a batch of many agree (the export's batch axis is dynamic).
    np.testing.assert_allclose(with_onnx.predict(fer_faces[3:4]), p_onnx[3:4], atol=1e-5)


def test_onnx_reads_its_description_from_the_metadata(model_files: tuple[Path, Path]) -> None:
    clf = load_classifier(model_files[1], device="cpu")
    assert isinstance(clf, OnnxClassifier)
    assert clf.classes == FERPLUS_CLASSES
    assert (clf.meta.arch, clf.meta.input_size, clf.meta.mean, clf.meta.std, clf.meta.crop_margin) == (
        "vgg19", 48, META.mean, META.std, META.crop_margin)
    assert clf.meta.metrics == {"test_accuracy": 0.5}
    assert clf.predict(np.zeros((0, 48, 48), np.uint8)).shape == (0, 8)
    with pytest.raises(ValueError, match=r"faces must be uint8 \(N, 48, 48\)"):
        clf.predict(np.zeros((2, 64, 64), np.uint8))


def test_auto_backend_follows_the_file_type(model_files: tuple[Path, Path]) -> None:
    pt_path, onnx_path = model_files
    assert isinstance(load_classifier(pt_path, device="cpu"), ExpressionClassifier)
    assert isinstance(load_classifier(onnx_path, device="cpu"), OnnxClassifier)


def test_forced_backend_picks_the_shipped_file_of_its_kind(model_files: tuple[Path, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "resources_dir", lambda: model_files[0].parent.parent)
    (model_files[0].parent.parent / "models").mkdir(exist_ok=True)
    shipped = model_files[0].parent.parent / "models"
    for source in model_files:
        (shipped / source.name).write_bytes(source.read_bytes())
    assert isinstance(load_classifier(device="cpu", backend="onnx"), OnnxClassifier)
    assert isinstance(load_classifier(device="cpu", backend="torch"), ExpressionClassifier)
    # Both shipped: a CPU with native bf16 runs torch (bf16); one without runs onnxruntime, faster
    # than torch in fp32. Which CPU this is is hardware, so both kinds are stood in for.
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: True)
    assert isinstance(load_classifier(device="cpu"), ExpressionClassifier)
    assert isinstance(load_classifier(device="cpu", reduced_precision=False), OnnxClassifier)  # fp32 asked for
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: False)
    assert isinstance(load_classifier(device="cpu"), OnnxClassifier)
    assert isinstance(load_classifier(device="cpu:0"), OnnxClassifier)  # torch's name for the CPU works too
    assert isinstance(load_classifier(device="cpu", reduced_precision=True), ExpressionClassifier)
    # Each alone is taken wherever it can run.
    (shipped / "fermonitor_vgg19.onnx").unlink()
    assert isinstance(load_classifier(device="cpu"), ExpressionClassifier)
    (shipped / "fermonitor_vgg19.onnx").write_bytes(model_files[1].read_bytes())
    (shipped / "fermonitor_vgg19.pt").unlink()
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: True)
    assert isinstance(load_classifier(device="cpu"), OnnxClassifier)


def test_missing_onnx_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(CheckpointError, match=f"model file {missing} does not exist"):
        load_classifier(missing, backend="onnx")
    monkeypatch.setattr(resources, "resources_dir", lambda: tmp_path)
    with pytest.raises(CheckpointError, match=r"no expression model is installed at .*fermonitor_vgg19\.onnx"):
        load_classifier(backend="onnx")


def test_bad_backend_device_and_file_type_are_clear_errors(model_files: tuple[Path, Path], tmp_path: Path) -> None:
    pt_path, onnx_path = model_files
    with pytest.raises(ValueError, match="backend 'tensorrt' is not one of auto, torch, onnx"):
        load_classifier(onnx_path, backend="tensorrt")
    with pytest.raises(ValueError, match="is an ONNX export; the torch backend reads .pt"):
        load_classifier(onnx_path, backend="torch")
    with pytest.raises(ValueError, match="is a torch checkpoint; the onnx backend reads"):
        load_classifier(pt_path, backend="onnx")
    with pytest.raises(ValueError, match="device 'mps' is not supported by the onnx backend"):
        load_classifier(onnx_path, device="mps")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(CheckpointError, match=f"model file {garbage} is not a readable ONNX model"):
        load_classifier(garbage)


def with_metadata(source: Path, path: Path, **changes: str | None) -> Path:
    """A copy of the ONNX model ``source`` at ``path`` whose metadata has ``changes`` (None: left out)."""
    proto = onnx.load(str(source))
    kept = {p.key: p.value for p in proto.metadata_props}
    kept.update(changes)
    del proto.metadata_props[:]
    for key, value in kept.items():
        if value is not None:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path


def test_missing_metadata_is_a_clear_error(model_files: tuple[Path, Path], tmp_path: Path) -> None:
    stripped = with_metadata(model_files[1], tmp_path / "stripped.onnx", mean=None)
    with pytest.raises(CheckpointError, match=f"model file {stripped} lacks metadata 'mean'"):
        load_classifier(stripped)


@pytest.mark.parametrize(("changes", "message"), [
    ({"input_size": "64"}, "takes input 'faces' of shape (batch, 1, 48, 48), but its metadata says input size 64: "
                           "expected (N, 1, 64, 64)"),
    ({"input_size": "0"}, "has input size 0: it must be from 1 to 1024 pixels"),
    ({"std": "0"}, "has normalisation std 0.0: it must be a finite number above 0"),
    ({"std": "nan"}, "has normalisation std nan: it must be a finite number above 0"),
    ({"mean": "inf"}, "has normalisation mean inf: it must be a finite number"),
])
def test_metadata_that_cannot_feed_the_model_is_refused_at_load(model_files: tuple[Path, Path], tmp_path: Path,
                                                                changes: dict[str, str], message: str) -> None:
    bad = with_metadata(model_files[1], tmp_path / "bad.onnx", **changes)
    with pytest.raises(CheckpointError) as info:
        load_classifier(bad, device="cpu")
    assert str(info.value) == f"model file {bad} {message}"


NO_TORCH_SCRIPT = """
import importlib, importlib.abc, pkgutil, sys

class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "torchvision"}:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, BlockTorch())
import numpy as np
import fermonitor.core
# models and device are the torch backend's own modules; every other core module must import.
for info in pkgutil.iter_modules(fermonitor.core.__path__):
    if info.name not in {"models", "device"}:
        importlib.import_module("fermonitor.core." + info.name)
if importlib.util.find_spec("fermonitor.cli") is not None:
    importlib.import_module("fermonitor.cli")
from fermonitor.core.classifier import load_classifier
clf = load_classifier(sys.argv[1], device="cpu")
assert type(clf).__name__ == "OnnxClassifier", type(clf)
assert clf.predict(np.full((3, 48, 48), 128, np.uint8)).shape == (3, 8)
try:
    load_classifier(sys.argv[1], backend="torch")
except ValueError as exc:
    print("torch refused:", exc)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "torchvision"})
assert not leaked, leaked
print("ok without torch")
"""


def test_core_runs_the_onnx_model_without_torch(model_files: tuple[Path, Path]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(NO_TORCH_SCRIPT), str(model_files[1])],
                          capture_output=True, text=True, env=env, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torch refused: backend 'torch' was asked for but torch is not installed" in done.stdout
    assert "ok without torch" in done.stdout


def test_onnxruntime_providers_for_each_device_name() -> None:
    cpu_only = ["CPUExecutionProvider"]
    assert pick_providers("auto", cpu_only) == pick_providers("cpu", cpu_only) == cpu_only
    assert pick_providers("cpu:0", cpu_only) == cpu_only
    assert pick_providers("cuda:1", ["CUDAExecutionProvider", *cpu_only]) == ["CUDAExecutionProvider", *cpu_only]
    with pytest.raises(ValueError, match=r"^device 'cuda' was asked for but this onnxruntime has no CUDA provider "
                                         r"\(available: CPUExecutionProvider\)$"):
        pick_providers("cuda", cpu_only)
    with pytest.raises(ValueError, match=r"^device 'mps' is not supported by the onnx backend"):
        pick_providers("mps", cpu_only)

