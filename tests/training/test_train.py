"""Training steps, resume, evaluate, export and compare on a small real FER+ folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

import training.train as train_module
from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta, load_checkpoint, save_checkpoint
from fermonitor.core.models import build_model
from training import average, compare, evaluate_cli, export, train
from training.data import DataPaths, load_splits
from training.engine import to_input

# The cheapest registered model per face: the original study's ResNet34 (stride-2 stem and max-pool).
CHEAP_ARCH = "seed_resnet34"


def _train_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data), "--output-dir", str(out), "--arch", CHEAP_ARCH, "--batch-size", "16",
            "--lr", "0.01", "--threads", "1", "--amp", "off", "--no-progress", "--augment", "flip,crop", *extra]


def test_two_training_steps_lower_the_loss(small_data: Path, isolated_cache: Path, one_thread: None) -> None:
    torch.manual_seed(0)
    faces = load_splits(DataPaths.in_folder(small_data))["train"].subset(np.arange(16))
    model = build_model(CHEAP_ARCH, num_classes=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = to_input(faces.images, 0.5, 0.25, torch.device("cpu"))
    target = torch.from_numpy(faces.targets)
    model.train()
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(model(x), target)
        losses.append(float(loss))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[2] < losses[0], losses


def test_resume_matches_an_uninterrupted_run(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, one_thread: None) -> None:
    straight = tmp_path / "straight"
    train.main(train.get_args_parser().parse_args(_train_argv(small_data, straight, "--epochs", "2")))

    real_epoch = train_module.train_one_epoch

    def stop_in_epoch_two(*args, **kwargs):
        if args[6] == 1:  # the epoch index argument
            raise KeyboardInterrupt("simulated interruption")
        return real_epoch(*args, **kwargs)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(train_module, "train_one_epoch", stop_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train.main(train.get_args_parser().parse_args(_train_argv(small_data, resumed, "--epochs", "2")))
    monkeypatch.setattr(train_module, "train_one_epoch", real_epoch)
    metrics = train.main(train.get_args_parser().parse_args(_train_argv(small_data, resumed, "--epochs", "2", "--resume")))

    a = torch.load(straight / "last.pth", weights_only=True)
    b = torch.load(resumed / "last.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-6, msg=f"weights differ at {key}")
    summary = (resumed / "summary.csv").read_text().splitlines()
    assert len(summary) == 3  # header and one row per epoch, none repeated
    assert json.loads((straight / "test_metrics.json").read_text())["accuracy"] == metrics["accuracy"]


def test_average_of_kept_epochs(small_data: Path, isolated_cache: Path, tmp_path: Path, one_thread: None) -> None:
    run = tmp_path / "run"
    train.main(train.get_args_parser().parse_args(_train_argv(small_data, run, "--epochs", "2", "--keep-epochs")))
    epochs = [run / "epoch001.pt", run / "epoch002.pt"]
    assert [load_checkpoint(p)[1].metrics["epoch"] for p in epochs] == [1, 2]
    out = tmp_path / "mean.pt"
    metrics = average.main(average.get_args_parser().parse_args(
        ["--checkpoints", *map(str, epochs), "--output", str(out), "--data-dir", str(small_data), "--amp", "off"]))

    (first, _), (second, _) = (load_checkpoint(p) for p in epochs)
    model, meta = load_checkpoint(out)
    weights, a, b = model.state_dict(), first.state_dict(), second.state_dict()
    torch.testing.assert_close(weights["conv1.weight"], (a["conv1.weight"] + b["conv1.weight"]) / 2)
    # Batch-norm statistics are measured again on the training faces: their exact mean there.
    faces = load_splits(DataPaths.in_folder(small_data))["train"]
    x = to_input(faces.images, meta.mean, meta.std, torch.device("cpu"))
    with torch.inference_mode():
        first_conv = model.conv1(x)
    torch.testing.assert_close(weights["bn1.running_mean"], first_conv.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert meta.metrics["valid_accuracy"] == metrics["accuracy"]
    assert meta.metrics["averaged_from"] == [str(p) for p in epochs]
    assert meta.arch == CHEAP_ARCH


def test_average_rejects_checkpoints_of_different_models(tmp_path: Path) -> None:
    one = tmp_path / "one.pt"
    save_checkpoint(one, build_model(CHEAP_ARCH, num_classes=8), ModelMeta(CHEAP_ARCH, FERPLUS_CLASSES), half=False)
    other = tmp_path / "other.pt"
    save_checkpoint(other, build_model("seed_resnet50", num_classes=8), ModelMeta("seed_resnet50", FERPLUS_CLASSES),
                    half=False)
    with pytest.raises(ValueError, match=r"other\.pt has arch 'seed_resnet50'.*only checkpoints of one model"):
        average.load_matching([one, other])
    with pytest.raises(ValueError, match="two or more checkpoints, got 1"):
        average.load_matching([one])


def _random_checkpoint(path: Path) -> Path:
    torch.manual_seed(1)
    model = build_model(CHEAP_ARCH, num_classes=10)
    meta = ModelMeta(CHEAP_ARCH, FERPLUS_CLASSES + ("unknown", "NF"), metrics={"note": "random weights"})
    save_checkpoint(path, model, meta, half=False)
    return path


def test_export_round_trip(small_data: Path, isolated_cache: Path, tmp_path: Path, one_thread: None) -> None:
    import onnxruntime

    source = _random_checkpoint(tmp_path / "model.pt")
    onnx_path = tmp_path / "ship.onnx"
    report = export.main(export.get_args_parser().parse_args(
        ["--checkpoint", str(source), "--onnx", str(onnx_path), "--half", "--data-dir", str(small_data)]))
    assert report["max_abs_logit_diff"] <= export.MAX_ABS_DIFF
    shipped, meta = load_checkpoint(tmp_path / "ship.pt")
    assert meta.metrics == {"note": "random weights"}
    assert all(v.dtype == torch.float16 for v in torch.load(tmp_path / "ship.pt", weights_only=True)["state_dict"].values()
               if v.is_floating_point())
    props = export.read_onnx_metadata(onnx_path)
    assert json.loads(props["classes"]) == list(meta.classes)
    assert (props["arch"], float(props["mean"]), float(props["std"]), int(props["input_size"])) == (CHEAP_ARCH, 0.5, 0.25, 48)
    # Weights from the fp16 checkpoint are stored as fp16 in the ONNX file too: conv/linear and batch norm.
    stored = {init.data_type for init in onnx.load(str(onnx_path)).graph.initializer if len(init.dims) > 0}
    assert stored == {onnx.TensorProto.FLOAT16}

    faces = load_splits(DataPaths.in_folder(small_data))["test"].images[:5]
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["faces"] and [o.name for o in session.get_outputs()] == ["logits"]
    with torch.inference_mode():
        expected = shipped(to_input(faces, meta.mean, meta.std, torch.device("cpu"))).numpy()
    for n in (1, 5):  # the batch axis is dynamic
        (got,) = session.run(["logits"], {"faces": to_input(faces[:n], meta.mean, meta.std, torch.device("cpu")).numpy()})
        assert got.shape == (n, 10) and np.abs(got - expected[:n]).max() <= 1e-4


def test_evaluate_prints_the_protocol_metrics(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str], one_thread: None) -> None:
    source = _random_checkpoint(tmp_path / "model.pt")
    plot = tmp_path / "confusion.png"
    metrics = evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(
        ["--checkpoint", str(source), "--data-dir", str(small_data), "--split", "valid", "--plot", str(plot)]))
    out = capsys.readouterr().out
    valid = load_splits(DataPaths.in_folder(small_data))["valid"]
    confusion = np.array(metrics["confusion"])
    assert confusion.shape == (8, 8) and confusion.sum() == len(valid)
    assert confusion.sum(axis=1).tolist() == np.bincount(valid.labels, minlength=8).tolist()
    assert f"accuracy:  {100 * metrics['accuracy']:.2f}%" in out and "macro-F1" in out
    assert all(name in out for name in FERPLUS_CLASSES) and "FER2013Valid" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_trains_runs_in_parallel_processes(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    argv = ["--only", "seed_resnet34,resnet34", "--jobs", "2", "--budget-epochs", "1", "--data-dir", str(small_data),
            "--threads", "1", "--output-dir", str(tmp_path / "results"), "--work-dir", str(tmp_path / "work"),
            "--no-progress"]
    assert compare.main(compare.get_args_parser().parse_args(argv)) == ["seed_resnet34", "resnet34"]
    table = (tmp_path / "results" / "README.md").read_text()
    for name in ("seed_resnet34", "resnet34"):
        assert (tmp_path / "results" / name / "confusion.png").is_file()
        assert f"| [{name}]({name}/) |" in table
        assert "finished in" in (tmp_path / "work" / f"{name}.log").read_text()
    (tmp_path / "results" / "README.md").unlink()
    assert compare.main(compare.get_args_parser().parse_args([*argv, "--table-only"])) == []
    assert (tmp_path / "results" / "README.md").read_text() == table
    with pytest.raises(ValueError, match="--jobs 0 is not a positive number"):
        compare.main(compare.get_args_parser().parse_args([*argv, "--jobs", "0"]))


def test_compare_runs_publishes_and_skips_finished_runs(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                       one_thread: None) -> None:
    argv = ["--only", "seed_resnet34", "--budget-epochs", "1", "--data-dir", str(small_data), "--threads", "1",
            "--output-dir", str(tmp_path / "results"), "--work-dir", str(tmp_path / "work"), "--no-progress"]
    assert compare.main(compare.get_args_parser().parse_args(argv)) == ["seed_resnet34"]
    published = tmp_path / "results" / "seed_resnet34"
    assert {p.name for p in published.iterdir()} == {"summary.csv", "args.json", "test_metrics.json", "curves.png",
                                                     "confusion.png"}
    table = (tmp_path / "results" / "README.md").read_text()
    assert "| [seed_resnet34](seed_resnet34/) | ResNet34, SGD lr 0.01 | 69.5% |" in table
    confusion = json.loads((published / "test_metrics.json").read_text())["confusion"]
    name, share = compare.majority_class_share(confusion)
    assert sum(confusion[FERPLUS_CLASSES.index(name)]) == max(sum(row) for row in confusion)
    assert f"says {name} for every face scores {100 * share:.1f}%" in table
    checkpoint_time = (tmp_path / "work" / "seed_resnet34" / "best.pt").stat().st_mtime_ns
    compare.main(compare.get_args_parser().parse_args(argv))
    assert (tmp_path / "work" / "seed_resnet34" / "best.pt").stat().st_mtime_ns == checkpoint_time
    shutil.rmtree(tmp_path / "work")  # a later session: only the published results are left
    published_args = json.loads((published / "args.json").read_text())
    del published_args["keep_epochs"]  # published before that option existed: it changes no result
    (published / "args.json").write_text(json.dumps(published_args))
    compare.main(compare.get_args_parser().parse_args(argv))
    assert not (tmp_path / "work" / "seed_resnet34").exists()
    assert "| [seed_resnet34](seed_resnet34/) |" in (tmp_path / "results" / "README.md").read_text()
    with pytest.raises(ValueError, match="--only names unknown runs nope"):
        compare.main(compare.get_args_parser().parse_args([*argv[:0], "--only", "nope"]))
