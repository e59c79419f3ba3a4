"""The shipped int8 model: it agrees with the fp32 model on real faces, and the app runs it only where
the CPU has VNNI instructions."""

from __future__ import annotations

import numpy as np
import pytest

from fermonitor.core import classifier as classifier_module
from fermonitor.core.classifier import load_classifier, resolve_backend, shipped_backends
from fermonitor.core.onnx_backend import OnnxClassifier
from fermonitor.core.resources import default_model_path

needs_int8 = pytest.mark.skipif(not default_model_path("int8").is_file() or "onnx" not in shipped_backends(),
                                reason="the shipped int8 model or onnxruntime is not installed")


@needs_int8
def test_the_int8_model_agrees_with_fp32_on_real_faces(fer_faces: tuple[np.ndarray, np.ndarray]) -> None:
    faces, labels = fer_faces
    fp32 = OnnxClassifier(default_model_path("onnx"), "cpu")
    int8 = OnnxClassifier(default_model_path("int8"), "cpu")
    assert int8.runtime.startswith("onnxruntime int8") and fp32.runtime.startswith("onnxruntime fp32")
    p32, p8 = fp32.predict(faces), int8.predict(faces)
    assert np.mean(p32.argmax(1) == p8.argmax(1)) >= 0.98  # 99.68% on all 3,137 test faces
    assert abs(np.mean(p8.argmax(1) == labels) - np.mean(p32.argmax(1) == labels)) <= 0.01
    assert int8.meta.classes == fp32.meta.classes and int8.meta.mean == fp32.meta.mean


@needs_int8
@pytest.mark.parametrize("vnni", [True, False])
def test_the_int8_model_runs_only_on_a_cpu_with_vnni(vnni: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classifier_module, "cpu_has_vnni", lambda: vnni)
    monkeypatch.setattr(classifier_module, "_runs_on_cpu", lambda device: True)
    chosen = resolve_backend("auto", None, "cpu")
    assert (chosen == "int8") == vnni
    if not vnni:
        assert chosen in ("torch", "onnx")
    assert resolve_backend("auto", None, "cpu", reduced_precision=True) != "int8"  # bf16 asked for


@needs_int8
def test_the_runtime_is_recorded_in_the_session_json(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from fermonitor.core.session import SessionWriter, session_json_path
    from fermonitor.core.settings import Settings

    monkeypatch.setattr(classifier_module, "cpu_has_vnni", lambda: True)
    monkeypatch.setattr(classifier_module, "_runs_on_cpu", lambda device: True)
    clf = load_classifier(device="cpu")
    with SessionWriter(tmp_path / "s.csv", "test", clf.meta, Settings(), runtime=clf.runtime):
        pass
    recorded = json.loads(session_json_path(tmp_path / "s.csv").read_text())["model"]["runtime"]
    assert recorded == clf.runtime and "int8" in recorded
