"""One place that resolves bundled files, from a source checkout and from a frozen executable."""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

import cv2


def resources_dir() -> Path:
    """The package's ``resources/`` folder (models, icons): from a source checkout, an installed
    wheel, or the standalone executable's bundle."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        return Path(frozen_root) / "fermonitor" / "resources"
    return Path(str(files("fermonitor") / "resources"))


# The checkpoint (torch), its ONNX export, and that export quantised to int8 (onnxruntime, for CPUs with VNNI).
MODEL_SUFFIXES = {"torch": ".pt", "onnx": ".onnx", "int8": ".int8.onnx"}


def default_model_path(backend: str = "torch") -> Path:
    """The shipped expression model: the checkpoint for torch, its ONNX export for onnxruntime, the
    int8 ONNX file for ``"int8"``."""
    if backend not in MODEL_SUFFIXES:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(MODEL_SUFFIXES)}")
    return resources_dir() / "models" / f"fermonitor_vgg19{MODEL_SUFFIXES[backend]}"


YUNET_FILE_NAME = "face_detection_yunet_2026may.onnx"


def yunet_model_path() -> Path:
    """The shipped YuNet face detector (fermonitor/resources/models/NOTICE-yunet.md says where it comes from)."""
    return resources_dir() / "models" / YUNET_FILE_NAME


def cascade_path(name: str = "haarcascade_frontalface_default.xml") -> Path:
    """An OpenCV Haar cascade file: the bundled copy when frozen, else opencv-python's own."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        return Path(frozen_root) / "cv2_data" / name
    return Path(cv2.data.haarcascades) / name
