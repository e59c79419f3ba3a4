"""What training, average, export and evaluate write records no place on the machine that ran them."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
import torch

from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta, load_checkpoint, save_checkpoint
from fermonitor.core.models import build_model
from training import average, evaluate_cli, export, train

CHEAP_ARCH = "seed_resnet34"
TEN_CLASSES = FERPLUS_CLASSES + ("unknown", "NF")  # --label-mode argmax10


def machine_paths(value, *folders: Path) -> list[str]:
    """Every string in the JSON-like ``value`` that is an absolute path or names one of ``folders``."""
    if isinstance(value, dict):
        return [found for item in value.values() for found in machine_paths(item, *folders)]
    if isinstance(value, list | tuple):
        return [found for item in value for found in machine_paths(item, *folders)]
    if isinstance(value, str) and (PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()
                                   or any(str(folder) in value for folder in folders)):
        return [value]
    return []


def _random_checkpoint(path: Path, train_args: dict | None = None, metrics: dict | None = None) -> Path:
    torch.manual_seed(1)
    meta = ModelMeta(CHEAP_ARCH, TEN_CLASSES, metrics=metrics or {}, train_args=train_args or {})
    save_checkpoint(path, build_model(CHEAP_ARCH, num_classes=len(TEN_CLASSES)), meta, half=False)
    return path


def test_a_run_and_what_is_made_from_it_record_paths_relative(small_data: Path, isolated_cache: Path,
                                                              tmp_path: Path, one_thread: None) -> None:
    start = _random_checkpoint(tmp_path / "start.pt")
    run = tmp_path / "run"
    # Absolute paths on the command line, as a user gives them.
    train.main(train.get_args_parser().parse_args([
        "--data-dir", str(small_data), "--output-dir", str(run), "--init", str(start), "--arch", CHEAP_ARCH,
        "--label-mode", "argmax10", "--epochs", "1", "--train-fraction", "0.25", "--batch-size", "16",
        "--lr", "0.01", "--threads", "1", "--amp", "off", "--keep-epochs", "--no-progress"]))

    recorded = json.loads((run / "args.json").read_text())
    assert machine_paths(recorded, tmp_path, small_data) == []
    # The data folder by its name, the run folder as the folder args.json is in, --init by its name.
    assert (recorded["data_dir"], recorded["output_dir"], recorded["init"]) == (small_data.name, ".", "start.pt")
    for checkpoint in ("best.pt", "epoch001.pt"):  # the checkpoints record the same arguments
        train_args = load_checkpoint(run / checkpoint)[1].train_args
        assert {key: value for key, value in train_args.items() if key != "init_sha256"} == recorded
    state = torch.load(run / "last.pth", weights_only=True)
    assert machine_paths(state["args"], tmp_path, small_data) == []
    assert machine_paths(json.loads((run / "test_metrics.json").read_text()), tmp_path, small_data) == []

    average.main(average.get_args_parser().parse_args(
        ["--checkpoints", str(run / "epoch001.pt"), str(run / "best.pt"), "--output", str(run / "mean.pt"),
         "--data-dir", str(small_data), "--amp", "off"]))
    _, meta = load_checkpoint(run / "mean.pt")
    assert meta.metrics["averaged_from"] == ["epoch001.pt", "best.pt"]  # beside the output
    assert machine_paths([meta.metrics, meta.train_args], tmp_path, small_data) == []

    scored = tmp_path / "scored.json"
    evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(
        ["--checkpoint", str(run / "best.pt"), "--data-dir", str(small_data), "--json", str(scored)]))
    assert machine_paths(json.loads(scored.read_text()), tmp_path, small_data) == []


def test_export_keeps_an_older_checkpoints_machine_paths_out_of_the_shipped_files(tmp_path: Path,
                                                                                  one_thread: None) -> None:
    # A checkpoint trained before paths were recorded relative, as the model shipped with issue 25 was.
    # Absolute paths of this machine, made at run time, and a Windows one.
    machine = tmp_path / "machine"
    older = _random_checkpoint(
        tmp_path / "best.pt",
        train_args={"data_dir": str(machine / "shared" / "data"), "output_dir": str(machine / "runs" / "vgg19-30ep"),
                    "lr": 0.1, "init": str(machine / "fermonitor_vgg19_stage3.pt"), "augment": ["flip", "crop"]},
        metrics={"valid_accuracy": 0.5, "averaged_from": [str(machine / "runs" / "vgg19-30ep" / "epoch029.pt"),
                                                          r"D:\runs\epoch030.pt"]})
    onnx_path = tmp_path / "ship" / "model.onnx"
    export.main(export.get_args_parser().parse_args(
        ["--checkpoint", str(older), "--onnx", str(onnx_path), "--half", "--no-verify"]))
    _, meta = load_checkpoint(tmp_path / "ship" / "model.pt")
    assert meta.train_args == {"data_dir": "data", "output_dir": ".", "lr": 0.1, "init": "fermonitor_vgg19_stage3.pt",
                               "augment": ["flip", "crop"]}
    assert meta.metrics == {"valid_accuracy": 0.5, "averaged_from": ["epoch029.pt", "epoch030.pt"]}
    onnx_metadata = export.read_onnx_metadata(onnx_path)
    assert machine_paths(onnx_metadata, tmp_path) == []
    assert json.loads(onnx_metadata["metrics"]) == meta.metrics


@pytest.mark.parametrize(("path", "run_dir", "recorded"), [
    ("runs/vgg19", "runs/vgg19", "."),
    ("runs/vgg19/epoch003.pt", "runs/vgg19", "epoch003.pt"),
    ("../shared/data", "runs/vgg19", "data"),
    ("runs/vgg19-ship/best.pt", "runs/vgg19-ft6", "best.pt"),
])
def test_recorded_path_is_relative_to_the_run_folder_or_a_name(path: str, run_dir: str, recorded: str) -> None:
    assert train.recorded_path(Path(path), Path(run_dir)) == recorded
