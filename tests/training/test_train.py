"""Training steps, resume, evaluate, export and compare on a small real FER+ folder."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

import training.__main__ as training_main
import training.train as train_module
from fermonitor.core.checkpoint import (
    FERPLUS_CLASSES,
    CheckpointError,
    ModelMeta,
    load_checkpoint,
    save_checkpoint,
)
from fermonitor.core.models import build_model
from training import average, compare, evaluate_cli, export, train
from training.data import DataPaths, load_splits, load_study_split
from training.engine import (
    AUGMENT_OPS,
    Teacher,
    draw_labels,
    logit_adjustment,
    metrics_from_logits,
    predict_logits,
    to_input,
    train_one_epoch,
)

# The cheapest registered model per face: the original study's ResNet34 (stride-2 stem and max-pool).
CHEAP_ARCH = "seed_resnet34"


def _train_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data), "--output-dir", str(out), "--arch", CHEAP_ARCH, "--batch-size", "16",
            "--lr", "0.01", "--threads", "1", "--amp", "off", "--no-progress", "--augment", "flip,crop", *extra]


def test_two_training_steps_lower_the_loss(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                          one_thread: None) -> None:
    # The training code itself (train_one_epoch with the command's optimizer): one batch of 16 faces
    # per epoch, so the third epoch's loss is measured after two steps.
    args = train.get_args_parser().parse_args(_train_argv(small_data, tmp_path, "--augment", "", "--sched", "none"))
    args.amp = False
    torch.manual_seed(0)
    faces = load_splits(DataPaths.in_folder(small_data))["train"].subset(np.arange(16))
    model = build_model(CHEAP_ARCH, num_classes=8)
    optimizer = train.make_optimizer(model, args)
    losses = [train_one_epoch(model, faces, optimizer, None, args, torch.device("cpu"), epoch)["train_loss"]
              for epoch in range(3)]
    assert losses[2] < losses[0], losses


def test_logit_adjustment_is_tau_times_the_log_class_prior() -> None:
    # 6 faces: three neutral, two happiness, one split between surprise and sadness; the other four
    # classes get none. A class with less than one face's mass counts as one face's.
    targets = np.zeros((6, 8), np.float32)
    targets[:3, 0] = 1.0
    targets[3:5, 1] = 1.0
    targets[5, 2:4] = 0.5
    adjust = logit_adjustment(targets, 0.5, torch.device("cpu")).numpy()
    shares = np.array([3, 2, 1, 1, 1, 1, 1, 1]) / 6
    np.testing.assert_allclose(adjust, 0.5 * np.log(shares), rtol=1e-6)
    assert adjust.argmax() == 0 and adjust.max() < 0  # the common class is handicapped least
    assert not logit_adjustment(targets, 0.0, torch.device("cpu")).any()


def test_logit_adjusted_loss_is_cross_entropy_of_the_shifted_logits(small_data: Path, isolated_cache: Path,
                                                                     tmp_path: Path, one_thread: None) -> None:
    faces = load_splits(DataPaths.in_folder(small_data), soft_targets=True)["train"].subset(np.arange(16))
    args = train.get_args_parser().parse_args(_train_argv(small_data, tmp_path, "--augment", "", "--sched", "none",
                                                          "--soft-targets", "--logit-adjust", "1", "--lr", "1e-12"))
    args.amp = False
    torch.manual_seed(0)
    model = build_model(CHEAP_ARCH, num_classes=8)
    model.eval()  # batch norm with running statistics: the same logits in and out of train_one_epoch
    with torch.no_grad():
        logits = model(to_input(faces.images, args.mean, args.std, torch.device("cpu")))
    shift = logit_adjustment(faces.targets, 1.0, torch.device("cpu"))
    expected = F.cross_entropy(logits + shift, torch.from_numpy(faces.targets)).item()
    plain = F.cross_entropy(logits, torch.from_numpy(faces.targets)).item()
    model.train = lambda mode=True: model  # keep eval mode: train_one_epoch calls model.train()
    got = train_one_epoch(model, faces, train.make_optimizer(model, args), None, args, torch.device("cpu"), 0)
    assert got["train_loss"] == pytest.approx(expected, rel=1e-4)
    assert abs(expected - plain) > 1e-3


def test_distilled_targets_mix_labels_and_the_teachers_mirrored_probabilities(
        small_data: Path, isolated_cache: Path, tmp_path: Path, one_thread: None) -> None:
    faces = load_splits(DataPaths.in_folder(small_data), soft_targets=True)["train"].subset(np.arange(16))
    args = train.get_args_parser().parse_args(_train_argv(small_data, tmp_path, "--augment", "", "--sched", "none",
                                                          "--soft-targets", "--lr", "1e-12", "--distill", "0.7"))
    args.amp = False
    torch.manual_seed(0)
    model, one, two = (build_model(CHEAP_ARCH, num_classes=8).eval() for _ in range(3))
    # Two teachers, the second trained on other normalisation: each must see the faces as it expects.
    teacher = Teacher([one, two], [(0.5, 0.25), (0.4, 0.3)], args.mean, args.std, flip=True)
    pixels = torch.from_numpy(faces.images).float()[:, None] / 255.0
    with torch.no_grad():
        logits = model(to_input(faces.images, args.mean, args.std, torch.device("cpu")))
        probs = [torch.softmax(net((view - m) / s), dim=1) for net, (m, s) in ((one, (0.5, 0.25)), (two, (0.4, 0.3)))
                 for view in (pixels, pixels.flip(3))]
    target = 0.3 * torch.from_numpy(faces.targets) + 0.7 * torch.stack(probs).mean(0)
    expected = F.cross_entropy(logits, target).item()
    plain = F.cross_entropy(logits, torch.from_numpy(faces.targets)).item()
    model.train = lambda mode=True: model  # keep eval mode: train_one_epoch calls model.train()
    got = train_one_epoch(model, faces, train.make_optimizer(model, args), None, args, torch.device("cpu"), 0,
                          teacher=teacher)
    assert got["train_loss"] == pytest.approx(expected, rel=1e-4)
    assert abs(expected - plain) > 1e-3


def test_training_with_a_teacher_end_to_end(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                            one_thread: None) -> None:
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(teacher, build_model(CHEAP_ARCH, num_classes=8), ModelMeta(CHEAP_ARCH, FERPLUS_CLASSES),
                    half=True)
    run = tmp_path / "run"
    train.main(train.get_args_parser().parse_args(_train_argv(
        small_data, run, "--epochs", "1", "--soft-targets", "--augment", "flip,mixup",
        "--teacher", str(teacher), "--teacher-flip", "--distill", "0.5")))
    recorded = json.loads((run / "args.json").read_text())
    assert recorded["teacher"] == ["teacher.pt"] and recorded["distill"] == 0.5 and recorded["teacher_flip"]
    assert load_checkpoint(run / "best.pt")[1].metrics["epoch"] == 1


def test_teacher_that_does_not_fit_the_run_is_refused(small_data: Path, isolated_cache: Path,
                                                      tmp_path: Path) -> None:
    ten_outputs = _random_checkpoint(tmp_path / "ten.pt")
    argv = _train_argv(small_data, tmp_path / "run", "--epochs", "1", "--teacher", str(ten_outputs))
    with pytest.raises(CheckpointError, match=r"--teacher .*ten\.pt has classes neutral, .*, NF; this run trains "
                                               r"neutral, .*, contempt$"):
        train.main(train.get_args_parser().parse_args(argv))
    with pytest.raises(ValueError, match="--teacher-flip applies to a run with --teacher"):
        train.main(train.get_args_parser().parse_args(_train_argv(small_data, tmp_path / "run", "--teacher-flip")))


def test_label_drawing_trains_on_labels_drawn_once_per_epoch(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                             one_thread: None) -> None:
    # Epoch 4 (seed 0) of 16 faces with --draw-labels computes what training on the labels that
    # draw_labels gives from that epoch's stream computes, and not what the soft targets give.
    def first_epoch_loss(*extra: str, targets=None) -> float:
        argv = _train_argv(small_data, tmp_path, "--augment", "", "--sched", "none", "--soft-targets", *extra)
        args = train.get_args_parser().parse_args(argv)
        args.amp = False
        faces = load_splits(DataPaths.in_folder(small_data), soft_targets=True)["train"].subset(np.arange(16))
        if targets is not None:
            faces.targets[:] = targets(faces.targets)
        torch.manual_seed(0)
        model = build_model(CHEAP_ARCH, num_classes=8)
        optimizer = train.make_optimizer(model, args)
        return train_one_epoch(model, faces, optimizer, None, args, torch.device("cpu"), 4)["train_loss"]

    drawn = first_epoch_loss("--draw-labels")
    assert drawn == first_epoch_loss(targets=lambda soft: draw_labels(soft, np.random.default_rng([4, 1])))
    assert drawn != first_epoch_loss()


@pytest.mark.parametrize(("extra", "mode", "copies"), [
    (["--label-mode", "probability"], "probability", 1),
    (["--label-mode", "argmax10"], "argmax10", 1),
    (["--opt", "adam"], "majority", 1),
    (["--offline-triple"], "majority", 3),
    (["--label-mode", "probability", "--draw-labels"], "probability", 1),
    (["--augment", ",".join(AUGMENT_OPS), "--soft-targets"], "majority", 1),  # every augmentation at once
    (["--logit-adjust", "1", "--soft-targets"], "majority", 1),
])
def test_each_grid_option_trains_end_to_end(small_data: Path, isolated_cache: Path, tmp_path: Path, one_thread: None,
                                            caplog: pytest.LogCaptureFixture, extra: list[str], mode: str,
                                            copies: int) -> None:
    run = tmp_path / "run"
    args = train.get_args_parser().parse_args(_train_argv(small_data, run, "--epochs", "1", *extra))
    with caplog.at_level("INFO", logger="training.train"):
        metrics = train.main(args)
    faces = len(load_splits(DataPaths.in_folder(small_data), mode)["train"])
    assert f"train {copies * faces}, valid" in caplog.text
    model, meta = load_checkpoint(run / "best.pt")
    assert len(meta.classes) == (10 if mode == "argmax10" else 8) and metrics["faces"] > 0
    # Also scored on the original study's footing: every PublicTest face, argmax-of-10 labels.
    study = load_study_split(DataPaths.in_folder(small_data))
    assert metrics["study_footing"]["faces"] == len(study) > len(load_splits(DataPaths.in_folder(small_data))["valid"])
    logits = predict_logits(model, study.images, meta.mean, meta.std, torch.device("cpu"), amp=False)
    assert metrics["study_footing"]["accuracy"] == pytest.approx(float((logits.argmax(1) == study.labels).mean()))
    torch.manual_seed(0)
    untrained = build_model(CHEAP_ARCH, num_classes=len(meta.classes))
    assert not torch.equal(model.state_dict()["conv1.weight"], untrained.state_dict()["conv1.weight"])
    optimizer_state = torch.load(run / "last.pth", weights_only=False)["optimizer"]["state"]
    assert ("exp_avg" in optimizer_state[0]) == ("adam" in extra)


@pytest.mark.parametrize(("extra", "momentum"), [(["--momentum", "0.5"], 0.5), (["--momentum", "0"], 0.0),
                                                 (["--momentum", "0.5", "--cycle-momentum"], 0.95)])
def test_one_cycle_holds_the_momentum_asked_for_unless_told_to_cycle_it(extra: list[str], momentum: float) -> None:
    args = train.get_args_parser().parse_args(["--sched", "onecycle", "--lr", "0.1", *extra])
    optimizer = train.make_optimizer(torch.nn.Linear(2, 2), args)
    scheduler = train.make_scheduler(optimizer, args, steps_per_epoch=10)
    values = []
    for _ in range(args.epochs * 10 - 1):
        values.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        scheduler.step()
    if args.cycle_momentum:
        assert values[0] == pytest.approx(momentum) and min(values) == pytest.approx(0.85)
    else:
        assert set(values) == {momentum}


def _stop_in_epoch(index: int):
    """train_one_epoch that raises KeyboardInterrupt when it starts epoch ``index`` (0-based)."""
    real_epoch = train_module.train_one_epoch

    def stop(*args, **kwargs):
        if args[6] == index:  # the epoch index argument
            raise KeyboardInterrupt("simulated interruption")
        return real_epoch(*args, **kwargs)

    return stop


@pytest.mark.parametrize("sched", ["onecycle", "cosine"])
def test_resume_matches_an_uninterrupted_run(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, one_thread: None, sched: str) -> None:
    # Dropout draws from torch's global generator: a resumed run must continue its stream.
    recipe = ("--epochs", "2", "--sched", sched, "--dropout", "0.3")
    straight = tmp_path / "straight"
    train.main(train.get_args_parser().parse_args(_train_argv(small_data, straight, *recipe)))

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "test_metrics.json").write_text("{}")  # an earlier run's, which must not outlive this one
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "train_one_epoch", _stop_in_epoch(1))
        with pytest.raises(KeyboardInterrupt):
            train.main(train.get_args_parser().parse_args(_train_argv(small_data, resumed, *recipe)))
    assert not (resumed / "test_metrics.json").exists()
    metrics = train.main(train.get_args_parser().parse_args(_train_argv(small_data, resumed, *recipe, "--resume")))

    a = torch.load(straight / "last.pth", weights_only=True)
    b = torch.load(resumed / "last.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-6, msg=f"weights differ at {key}")
    summary = (resumed / "summary.csv").read_text().splitlines()
    assert len(summary) == 3  # header and one row per epoch, none repeated
    scored = json.loads((straight / "test_metrics.json").read_text())
    assert scored["accuracy"] == metrics["accuracy"] and scored["votes"] == "label_csv"


@pytest.mark.parametrize("stop_epoch", [0, 1])
def test_resume_inside_an_epoch_matches_an_uninterrupted_run(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, one_thread: None,
                                                            stop_epoch: int) -> None:
    # A tiny --save-minutes saves last.pth after every batch; the run stops after the one that saves
    # the second batch of epoch ``stop_epoch`` (0-based), as a kill would.
    recipe = ("--epochs", "2", "--dropout", "0.3", "--augment", "flip,crop,rotate,erase", "--save-minutes", "1e-9")
    straight = tmp_path / "straight"
    train.main(train.get_args_parser().parse_args(_train_argv(small_data, straight, *recipe)))

    real_save = train_module.save_training_state

    def save_then_stop(path: Path, state: dict) -> None:
        real_save(path, state)
        if state["epoch"] == stop_epoch - 1 and state.get("within", {}).get("step") == 2:
            raise KeyboardInterrupt("simulated kill")

    resumed = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "save_training_state", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            train.main(train.get_args_parser().parse_args(_train_argv(small_data, resumed, *recipe)))
    assert torch.load(resumed / "last.pth", weights_only=True)["within"]["step"] == 2
    train.main(train.get_args_parser().parse_args(_train_argv(small_data, resumed, *recipe, "--resume")))

    a = torch.load(straight / "last.pth", weights_only=True)
    b = torch.load(resumed / "last.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1 and "within" not in b
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-6, msg=f"weights differ at {key}")
    with open(straight / "summary.csv", newline="") as f, open(resumed / "summary.csv", newline="") as g:
        columns = ("epoch", "lr", "train_loss", "train_acc", "valid_acc")
        assert [[row[c] for c in columns] for row in csv.DictReader(g)] == \
            [[row[c] for c in columns] for row in csv.DictReader(f)]

    # Inside an epoch the batch order is fixed: another --batch-size, or data options that give
    # another number of faces, cannot take over where it stopped.
    stopped = torch.load(resumed / "last.pth", weights_only=True)
    stopped["epoch"], stopped["within"] = 0, {"step": 1, "faces": 999}
    torch.save(stopped, resumed / "last.pth")
    last = resumed / "last.pth"
    with pytest.raises(CheckpointError, match=re.escape(f"--resume: {last} was trained with --batch-size 16, this "
                                                        "run asks for --batch-size 8")):
        train.main(train.get_args_parser().parse_args(
            [*_train_argv(small_data, resumed, *recipe, "--resume"), "--batch-size", "8"]))
    with pytest.raises(CheckpointError, match=re.escape(f"--resume: {last} stopped inside an epoch of 999 training "
                                                        "faces, this run has")):
        train.main(train.get_args_parser().parse_args(_train_argv(small_data, resumed, *recipe, "--resume")))


def test_resume_with_a_new_epoch_budget_follows_the_new_cosine(small_data: Path, isolated_cache: Path,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              one_thread: None) -> None:
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "train_one_epoch", _stop_in_epoch(1))
        with pytest.raises(KeyboardInterrupt):
            train.main(train.get_args_parser().parse_args(_train_argv(small_data, run, "--epochs", "4",
                                                                      "--sched", "cosine")))
    train.main(train.get_args_parser().parse_args(_train_argv(small_data, run, "--epochs", "2", "--sched", "cosine",
                                                              "--resume")))
    with open(run / "summary.csv", newline="") as f:
        lrs = [float(row["lr"]) for row in csv.DictReader(f)]
    # Cosine from 0.01 to 0 over 2 epochs: half-way, the second epoch starts at 0.005.
    assert lrs == pytest.approx([0.01, 0.005], rel=1e-4)


def test_resume_refuses_another_model_or_a_damaged_state(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                         one_thread: None) -> None:
    run = tmp_path / "run"
    train.main(train.get_args_parser().parse_args(_train_argv(small_data, run, "--epochs", "1")))
    argv = [*_train_argv(small_data, run, "--epochs", "2", "--resume"), "--arch", "seed_resnet50"]
    with pytest.raises(CheckpointError, match=re.escape(f"--resume: {run / 'last.pth'} was trained with --arch "
                                                        "seed_resnet34, this run asks for --arch seed_resnet50")):
        train.main(train.get_args_parser().parse_args(argv))
    # The optimizer's settings come back from last.pth, so a new value would be silently ignored.
    for option, value, said in [("--lr", "0.02", "--lr 0.01, this run asks for --lr 0.02"),
                                ("--weight-decay", "0", "--weight-decay 0.0005, this run asks for --weight-decay 0.0"),
                                ("--momentum", "0.5", "--momentum 0.9, this run asks for --momentum 0.5"),
                                ("--nesterov", None, "no --nesterov, this run asks for --nesterov")]:
        argv = [*_train_argv(small_data, run, "--epochs", "2", "--resume"), option, *([value] if value else [])]
        with pytest.raises(CheckpointError, match=re.escape(f"--resume: {run / 'last.pth'} was trained with {said}")):
            train.main(train.get_args_parser().parse_args(argv))
    # A run saved before --cycle-momentum existed cycled its one-cycle momentum: a resume must keep that.
    state = torch.load(run / "last.pth", weights_only=True)
    del state["args"]["cycle_momentum"]
    torch.save(state, run / "last.pth")
    with pytest.raises(CheckpointError, match=re.escape(f"--resume: {run / 'last.pth'} was trained with "
                                                        "--cycle-momentum, this run asks for no --cycle-momentum")):
        train.main(train.get_args_parser().parse_args(_train_argv(small_data, run, "--epochs", "2", "--resume")))
    (run / "last.pth").write_bytes((run / "last.pth").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=re.escape(f"--resume: {run / 'last.pth'} is not a readable training state")):
        train.main(train.get_args_parser().parse_args(_train_argv(small_data, run, "--epochs", "2", "--resume")))


def test_a_run_from_init_records_the_starting_weights_by_content(small_data: Path, isolated_cache: Path,
                                                                  tmp_path: Path, one_thread: None) -> None:
    source = _random_checkpoint(tmp_path / "model.pt")
    argv = _train_argv(small_data, tmp_path / "run", "--epochs", "1", "--label-mode", "argmax10", "--init", str(source),
                       "--train-fraction", "0.25")
    train.main(train.get_args_parser().parse_args(argv))
    _, meta = load_checkpoint(tmp_path / "run" / "best.pt")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    # By its name: where it lay is no part of the record; its content is.
    assert meta.train_args["init"] == source.name and meta.train_args["init_sha256"] == digest
    # The file at that path is replaced (as the shipped model is), even by another architecture: a resume
    # takes its weights from last.pth and keeps recording the model the run started from.
    save_checkpoint(source, build_model("seed_resnet50", num_classes=8), ModelMeta("seed_resnet50", FERPLUS_CLASSES))
    train.main(train.get_args_parser().parse_args([*argv, "--epochs", "2", "--resume", "--keep-epochs"]))
    _, meta = load_checkpoint(tmp_path / "run" / "epoch002.pt")
    assert meta.train_args["init_sha256"] == digest


def test_init_refuses_a_checkpoint_of_another_model(small_data: Path, isolated_cache: Path, tmp_path: Path) -> None:
    source = _random_checkpoint(tmp_path / "model.pt")  # 10 outputs, the original study's classes
    argv = _train_argv(small_data, tmp_path / "run", "--epochs", "1", "--init", str(source))
    with pytest.raises(CheckpointError, match=re.escape(f"--init {source} has 10 outputs; --label-mode majority trains 8")):
        train.main(train.get_args_parser().parse_args(argv))
    with pytest.raises(CheckpointError, match=re.escape(f"--init {source} is a {CHEAP_ARCH} model; this run trains "
                                                        "--arch seed_resnet50")):
        train.main(train.get_args_parser().parse_args([*argv, "--arch", "seed_resnet50"]))


def test_test_only_scores_best_with_its_own_normalisation(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                          one_thread: None) -> None:
    run = tmp_path / "run"
    trained = train.main(train.get_args_parser().parse_args(_train_argv(small_data, run, "--epochs", "1")))
    (run / "test_metrics.json").unlink()
    again = train.main(train.get_args_parser().parse_args(
        _train_argv(small_data, run, "--test-only", "--mean", "0.3", "--std", "0.4")))
    assert again == trained
    assert json.loads((run / "test_metrics.json").read_text()) == trained


def test_summary_of_a_resumed_run_keeps_the_epochs_done(tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([train.SUMMARY_FIELDS, [1, 0.01, 2, 0.1, 2, 0.1, 0.05, 9], [2, 0.01, 1, 0.2, 1, 0.2, 0.1, 9]])
    train.start_summary(path, 1)  # epoch 2 was written, then interrupted before its state was saved
    with open(path, newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1"]
    train.start_summary(path, 0)
    assert path.read_text().splitlines() == [",".join(train.SUMMARY_FIELDS)]


@pytest.mark.parametrize(("argv", "message"), [
    (["--augment", "flip,rotation"], f"argument --augment: rotation not known; choose from {','.join(AUGMENT_OPS)}"),
    (["--train-fraction", "0"], "argument --train-fraction: 0 is not a share in (0, 1]"),
    (["--batch-size", "0"], "argument --batch-size: 0 is not a whole number above 0"),
    (["--std", "0"], "argument --std: 0 is not a number above 0"),
    (["--dropout", "1"], "argument --dropout: 1 is not a share in [0, 1)"),
    (["--seed", "-1"], "argument --seed: -1 is negative"),
])
def test_bad_training_options_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        training_main.main(["train", *argv])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: {message}")


def test_command_line_errors_are_one_line(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert training_main.main(["train", "--data-dir", str(missing), "--output-dir", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == f"training train: error: FER2013 file {missing / 'fer2013.csv.gz'} does not exist\n"
    argv = ["train", *_train_argv(small_data, tmp_path / "run", "--label-mode", "argmax10", "--soft-targets")]
    assert training_main.main(argv) == 1
    assert capsys.readouterr().err == "training train: error: --soft-targets applies to --label-mode majority, not argmax10\n"
    argv = ["train", *_train_argv(small_data, tmp_path / "run", "--draw-labels")]
    assert training_main.main(argv) == 1
    assert capsys.readouterr().err == ("training train: error: --draw-labels draws from vote distributions: add "
                                       "--soft-targets or use --label-mode probability, not majority with one-hot "
                                       "targets\n")
    argv = ["train", *_train_argv(small_data, tmp_path / "run", "--sched", "cosine", "--cycle-momentum")]
    assert training_main.main(argv) == 1
    assert capsys.readouterr().err == "training train: error: --cycle-momentum applies to --sched onecycle, not cosine\n"
    assert training_main.main(["evaluate", "--checkpoint", str(missing / "model.pt")]) == 1
    assert capsys.readouterr().err == f"training evaluate: error: model file {missing / 'model.pt'} does not exist\n"


def test_an_unknown_command_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert training_main.main(["fit"]) == 2
    assert capsys.readouterr().err.startswith("usage: python -m training {train,compare,evaluate,export,quantize,average,")


def test_data_options_take_the_faces_they_say(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    def prepared(*extra: str) -> dict:
        return train.prepare_data(train.get_args_parser().parse_args(_train_argv(small_data, tmp_path, *extra)))

    full = prepared()
    with pytest.raises(ValueError, match=rf"--train-fraction 0.001 keeps none of the {len(full['train'])} training"):
        prepared("--train-fraction", "0.001")
    # --eval-fraction takes the same faces whatever the seed, so runs of a grid are scored alike.
    half, other_seed = prepared("--eval-fraction", "0.5"), prepared("--eval-fraction", "0.5", "--seed", "7")
    for name in ("valid", "test"):
        assert len(half[name]) == len(full[name]) // 2
        np.testing.assert_array_equal(half[name].rows, other_seed[name].rows)
        assert set(half[name].rows) <= set(full[name].rows)
    args = train.get_args_parser().parse_args(_train_argv(small_data, tmp_path / "newer", "--epochs", "1",
                                                          "--votes", "fer2013new"))
    with caplog.at_level("WARNING", logger="training.train"):
        train.main(args)
    assert "--votes fer2013new: validation and test use those votes too" in caplog.text
    assert json.loads((tmp_path / "newer" / "test_metrics.json").read_text())["votes"] == "fer2013new"


def test_compare_list_names_each_run_with_its_command(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="training.compare"):
        assert compare.main(compare.get_args_parser().parse_args(["--list"])) == []
    for run in compare.GRID:
        assert f"{run.name}: python -m training train {' '.join(run.arguments)}\n" in caplog.text


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
    assert meta.metrics["averaged_from"] == ["run/epoch001.pt", "run/epoch002.pt"]  # beside the output
    assert meta.arch == CHEAP_ARCH


def test_weighted_average_interpolates_two_models(tmp_path: Path) -> None:
    torch.manual_seed(0)
    first, second = (build_model(CHEAP_ARCH, num_classes=8) for _ in range(2))
    weights = average.mixing_weights([3.0, 1.0], 2)  # scaled to 0.75, 0.25
    mean = average.average_weights([first, second], weights)
    a, b = first.state_dict(), second.state_dict()
    torch.testing.assert_close(mean["conv1.weight"], 0.75 * a["conv1.weight"] + 0.25 * b["conv1.weight"])
    assert mean["bn1.num_batches_tracked"].dtype == torch.int64  # counters are copied, not averaged
    only_first = average.average_weights([first, second], average.mixing_weights([1.0, 0.0], 2))
    assert all(torch.equal(only_first[key], value) for key, value in a.items())


@pytest.mark.parametrize(("weights", "message"), [
    ([1.0], "--weights has 1 values for 2 checkpoints: give one per checkpoint"),
    ([0.0, 0.0], "--weights 0.0 0.0 sum to 0"),
])
def test_average_rejects_weights_that_do_not_fit(weights: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        average.mixing_weights(weights, 2)


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
    test = load_splits(DataPaths.in_folder(small_data))["test"]
    with torch.inference_mode():
        predicted = shipped(to_input(test.images, meta.mean, meta.std, torch.device("cpu")))[:, :8].argmax(1).numpy()
    # The shipped files describe themselves: their own figures on the official test split.
    assert meta.metrics["note"] == "random weights" and meta.metrics["test_faces"] == len(test)
    assert meta.metrics["test_accuracy"] == pytest.approx(float((predicted == test.labels).mean()))
    assert list(meta.metrics["test_recall"]) == list(FERPLUS_CLASSES) and 0 <= meta.metrics["test_macro_f1"] <= 1
    assert report["test_accuracy"] == meta.metrics["test_accuracy"]
    assert all(v.dtype == torch.float16 for v in torch.load(tmp_path / "ship.pt", weights_only=True)["state_dict"].values()
               if v.is_floating_point())
    props = export.read_onnx_metadata(onnx_path)
    assert json.loads(props["classes"]) == list(meta.classes) and json.loads(props["metrics"]) == meta.metrics
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


def test_evaluate_scores_the_ensemble_of_several_checkpoints_on_their_mean_logits(
        small_data: Path, isolated_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_thread: None) -> None:
    first = _random_checkpoint(tmp_path / "first.pt")
    torch.manual_seed(2)
    second = tmp_path / "second.pt"
    save_checkpoint(second, build_model(CHEAP_ARCH, num_classes=10),
                    ModelMeta(CHEAP_ARCH, FERPLUS_CLASSES + ("unknown", "NF"), mean=0.4, std=0.3), half=False)
    data = ["--data-dir", str(small_data), "--split", "valid", "--tta-flip"]
    metrics = evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(["--checkpoint", str(first), str(second), *data]))
    assert "the ensemble of 2 checkpoints (seed_resnet34: mean logits)" in capsys.readouterr().out

    valid = load_splits(DataPaths.in_folder(small_data))["valid"]
    each = []
    for path in (first, second):  # each with its own normalisation
        model, meta = load_checkpoint(path)
        each.append(predict_logits(model, valid.images, meta.mean, meta.std, torch.device("cpu"), amp=False,
                                   tta_flip=True))
    expected = metrics_from_logits((each[0] + each[1]) / 2, valid)
    assert metrics["confusion"] == expected["confusion"] and metrics["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert all(abs(metrics["loss"] - metrics_from_logits(one, valid)["loss"]) > 1e-4 for one in each)

    other = tmp_path / "other.pt"
    save_checkpoint(other, build_model(CHEAP_ARCH, num_classes=8), ModelMeta(CHEAP_ARCH, FERPLUS_CLASSES), half=False)
    assert training_main.main(["evaluate", "--checkpoint", str(first), str(other), *data]) == 1
    assert capsys.readouterr().err.startswith(f"training evaluate: error: checkpoint {other} has classes ('neutral', ")


def test_evaluate_and_export_refuse_what_they_cannot_score_or_would_overwrite(
        small_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reversed_classes = tmp_path / "reversed.pt"
    save_checkpoint(reversed_classes, build_model(CHEAP_ARCH, num_classes=8),
                    ModelMeta(CHEAP_ARCH, FERPLUS_CLASSES[::-1]), half=False)
    big_faces = tmp_path / "big.pt"
    save_checkpoint(big_faces, build_model(CHEAP_ARCH, num_classes=8), ModelMeta(CHEAP_ARCH, FERPLUS_CLASSES, 64),
                    half=False)
    data = ["--data-dir", str(small_data)]
    assert training_main.main(["evaluate", "--checkpoint", str(reversed_classes), *data]) == 1
    assert capsys.readouterr().err.startswith(
        f"training evaluate: error: checkpoint {reversed_classes} classes ('contempt', ")
    assert training_main.main(["evaluate", "--checkpoint", str(big_faces), *data]) == 1
    assert capsys.readouterr().err == (f"training evaluate: error: checkpoint {big_faces} expects 64px faces; "
                                       "FER+ faces are 48px\n")
    before = reversed_classes.read_bytes()
    argv = ["export", "--checkpoint", str(reversed_classes), "--onnx", str(tmp_path / "m.onnx"),
            "--half", str(reversed_classes), *data]
    assert training_main.main(argv) == 1
    assert capsys.readouterr().err == (f"training export: error: --half {reversed_classes} would overwrite the "
                                       f"input checkpoint {reversed_classes}\n")
    assert reversed_classes.read_bytes() == before and not (tmp_path / "m.onnx").exists()


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
    empty = tmp_path / "none-yet"  # a grid stopped before its first run: the table says so
    compare.main(compare.get_args_parser().parse_args([*argv, "--table-only", "--output-dir", str(empty)]))
    assert "Not run yet at this budget: " in (empty / "README.md").read_text()
    # Under another budget the table lists no run of this one, which it would mislabel.
    argv[argv.index("--budget-epochs") + 1] = "2"
    compare.main(compare.get_args_parser().parse_args([*argv, "--table-only"]))
    table = (tmp_path / "results" / "README.md").read_text()
    assert "**Budget of these numbers:** 2 epoch(s)" in table and "| [" not in table
    assert "Not run yet at this budget: " in table and "seed_resnet34" in table.split("Not run yet at this budget: ")[1]


def test_a_failed_parallel_run_is_one_line_naming_its_log(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(compare, "child_argv", lambda run, args, work_dir: [sys.executable, "-c", "raise SystemExit(3)"])
    argv = ["compare", "--only", "resnet34", "--jobs", "2", "--data-dir", str(small_data), "--threads", "1",
            "--output-dir", str(tmp_path / "results"), "--work-dir", str(tmp_path / "work"), "--no-progress"]
    assert training_main.main(argv) == 1
    assert capsys.readouterr().err == (f"training compare: error: comparison runs failed: resnet34 (see "
                                       f"{tmp_path / 'work' / 'resnet34.log'})\n")


def test_compare_runs_publishes_and_skips_finished_runs(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                       one_thread: None) -> None:
    argv = ["--only", "seed_resnet34", "--budget-epochs", "1", "--data-dir", str(small_data), "--threads", "1",
            "--output-dir", str(tmp_path / "results"), "--work-dir", str(tmp_path / "work"), "--no-progress"]
    assert compare.main(compare.get_args_parser().parse_args(argv)) == ["seed_resnet34"]
    published = tmp_path / "results" / "seed_resnet34"
    assert {p.name for p in published.iterdir()} == {"summary.csv", "args.json", "test_metrics.json", "curves.png",
                                                     "confusion.png"}
    table = (tmp_path / "results" / "README.md").read_text()
    footing = json.loads((published / "test_metrics.json").read_text())["study_footing"]["accuracy"]
    assert (f"| [seed_resnet34](seed_resnet34/) | ResNet34, SGD lr 0.01 | 69.5% | {100 * footing:.1f}% | "
            f"{100 * footing - 69.5:+.1f} |") in table
    assert "(grid.png)" in table and (tmp_path / "results" / "grid.png").stat().st_size > 0
    confusion = json.loads((published / "test_metrics.json").read_text())["confusion"]
    name, share = compare.majority_class_share(confusion)
    assert sum(confusion[FERPLUS_CLASSES.index(name)]) == max(sum(row) for row in confusion)
    assert f"says {name} for every face scores {100 * share:.1f}%" in table
    checkpoint_time = (tmp_path / "work" / "seed_resnet34" / "best.pt").stat().st_mtime_ns
    compare.main(compare.get_args_parser().parse_args(argv))
    assert (tmp_path / "work" / "seed_resnet34" / "best.pt").stat().st_mtime_ns == checkpoint_time
    # The precision column is the run's own: flip it in args.json and the rewritten table follows.
    for amp, precision in ((False, "fp32"), (True, "bf16/fp16 autocast")):
        recorded = json.loads((published / "args.json").read_text())
        (published / "args.json").write_text(json.dumps({**recorded, "amp": amp}))
        compare.main(compare.get_args_parser().parse_args([*argv, "--table-only"]))
        row = (tmp_path / "results" / "README.md").read_text().split("| [seed_resnet34]")[1].split("\n")[0]
        assert row.endswith(f"| 1 | 100% | {precision} |")
    shutil.rmtree(tmp_path / "work")  # a later session: only the published results are left
    published_args = json.loads((published / "args.json").read_text())
    del published_args["keep_epochs"]  # published before that option existed: it changes no result
    del published_args["logit_adjust"]  # nor this one, which a run of its time did not use (its default)
    (published / "args.json").write_text(json.dumps(published_args))
    compare.main(compare.get_args_parser().parse_args(argv))
    assert not (tmp_path / "work" / "seed_resnet34").exists()
    assert "| [seed_resnet34](seed_resnet34/) |" in (tmp_path / "results" / "README.md").read_text()
    with pytest.raises(ValueError, match="--only names unknown runs nope"):
        compare.main(compare.get_args_parser().parse_args([*argv[:0], "--only", "nope"]))


def test_compare_resumes_a_run_interrupted_under_the_same_budget(small_data: Path, isolated_cache: Path,
                                                                 tmp_path: Path, one_thread: None,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    argv = ["--only", "seed_resnet34", "--budget-epochs", "1", "--data-dir", str(small_data), "--threads", "1",
            "--output-dir", str(tmp_path / "results"), "--work-dir", str(tmp_path / "work"), "--no-progress"]
    real_score_best = train.score_best

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # after the training, before the test: as if stopped by hand

    monkeypatch.setattr(train, "score_best", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare.main(compare.get_args_parser().parse_args(argv))
    run_dir = tmp_path / "work" / "seed_resnet34"
    trained_at = (run_dir / "best.pt").stat().st_mtime_ns
    assert not (tmp_path / "results" / "seed_resnet34").exists()
    monkeypatch.setattr(train, "score_best", real_score_best)
    with caplog.at_level("INFO"):
        assert compare.main(compare.get_args_parser().parse_args(argv)) == ["seed_resnet34"]
    assert "seed_resnet34: python -m training train" in caplog.text and " --resume" in caplog.text
    assert (run_dir / "best.pt").stat().st_mtime_ns == trained_at  # its epoch was not trained again
    assert (tmp_path / "results" / "seed_resnet34" / "test_metrics.json").is_file()


def test_compare_trains_again_a_run_left_under_another_budget(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture, one_thread: None) -> None:
    argv = ["--only", "seed_resnet34", "--data-dir", str(small_data), "--threads", "1", "--output-dir",
            str(tmp_path / "results"), "--work-dir", str(tmp_path / "work"), "--no-progress"]
    compare.main(compare.get_args_parser().parse_args([*argv, "--budget-epochs", "1"]))
    caplog.clear()
    with caplog.at_level("INFO"):
        compare.main(compare.get_args_parser().parse_args([*argv, "--budget-epochs", "2"]))
    assert "holds no run to resume under these arguments; starting again" in caplog.text
    assert "resumed from" not in caplog.text
    published = tmp_path / "results" / "seed_resnet34"
    assert json.loads((published / "args.json").read_text())["epochs"] == 2
    with open(published / "summary.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_a_publish_stopped_part_way_leaves_no_run_that_looks_finished(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # The folder holds a run published under an older budget; the new run's files replace them.
    run_dir, out_dir = tmp_path / "work", tmp_path / "results"
    for folder, epochs in ((run_dir, 2), (out_dir, 1)):
        folder.mkdir()
        (folder / "summary.csv").write_text(",".join(train.SUMMARY_FIELDS) + "\n")
        (folder / "args.json").write_text(json.dumps({"epochs": epochs}))
        (folder / "test_metrics.json").write_text("{}")
    copy = shutil.copyfile

    def stop_at_the_metrics(source: Path, target: Path) -> None:
        if Path(source).name == "test_metrics.json":
            raise OSError("stopped")
        copy(source, target)

    monkeypatch.setattr(compare.shutil, "copyfile", stop_at_the_metrics)
    with pytest.raises(OSError, match="stopped"):
        compare.publish(compare.select_runs(["seed_resnet34"])[0], run_dir, out_dir)
    assert json.loads((out_dir / "args.json").read_text()) == {"epochs": 2}
    assert not (out_dir / "test_metrics.json").exists()  # the older budget's metrics are gone


@pytest.mark.parametrize(("folder", "epochs"), [("results", "2"), ("results/budget-4x25", "4")])
def test_published_comparison_counts_as_finished_under_its_documented_budget(
        tmp_path: Path, folder: str, epochs: str) -> None:
    # training/README.md's commands must find the 14 committed runs of each budget done, not train them
    # again, also after options that do not change what a run computes (such as --save-minutes) were added.
    published = Path(__file__).resolve().parents[2] / "training" / folder
    args = compare.get_args_parser().parse_args(["--budget-epochs", epochs, "--train-fraction", "0.25",
                                                 "--eval-fraction", "1.0", "--threads", "2", "--no-progress"])
    for run in compare.select_runs(None):
        wanted = train.args_dict(train.get_args_parser().parse_args(compare.run_arguments(run, args, tmp_path)))
        assert compare.is_finished(published / run.name, wanted), run.name


def test_quantize_writes_a_checked_int8_model_or_nothing(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                         one_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from fermonitor.core.onnx_backend import OnnxClassifier
    from training import quantize

    source = _random_checkpoint(tmp_path / "model.pt")
    onnx_path = tmp_path / "ship.onnx"
    export.main(export.get_args_parser().parse_args(
        ["--checkpoint", str(source), "--onnx", str(onnx_path), "--data-dir", str(small_data)]))
    argv = ["--onnx", str(onnx_path), "--data-dir", str(small_data), "--calibration-faces", "40"]
    monkeypatch.setattr(quantize, "MIN_AGREEMENT", 1.01)  # a bar no model clears: refused, nothing written
    with pytest.raises(quantize.QuantizeError, match="nothing written"):
        quantize.main(quantize.get_args_parser().parse_args(argv))
    assert not (tmp_path / "ship.int8.onnx").exists() and sorted(p.name for p in tmp_path.iterdir() if "int8" in p.name) == []
    monkeypatch.setattr(quantize, "MIN_AGREEMENT", 0.0)  # random weights: any agreement passes here
    monkeypatch.setattr(quantize, "MAX_ACCURACY_DROP", 1.0)
    report = quantize.main(quantize.get_args_parser().parse_args(argv))
    int8 = OnnxClassifier(tmp_path / "ship.int8.onnx", "cpu")
    assert int8.runtime.startswith("onnxruntime int8") and "40 FER+ training faces" in int8.quantization
    assert int8.meta.metrics["int8_top1_agreement_with_fp32"] == report["top1_agreement"]
    test = load_splits(DataPaths.in_folder(small_data))["test"]
    assert report["test_faces"] == len(test) and int8.predict(test.images[:3]).shape == (3, 10)
    with pytest.raises(quantize.QuantizeError, match="already quantised"):
        quantize.main(quantize.get_args_parser().parse_args(["--onnx", str(tmp_path / "ship.int8.onnx"),
                                                             "--data-dir", str(small_data)]))


def test_evaluate_external_scores_a_folder_per_class_set(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str], one_thread: None) -> None:
    import cv2

    from training.engine import predict_logits

    test = load_splits(DataPaths.in_folder(small_data))["test"]
    folders = {"neutral": "neutral", "happiness": "happy", "surprise": "Surprise", "sadness": "sad", "anger": "angry",
               "disgust": "disgust", "fear": "fear", "contempt": "contempt"}
    root = tmp_path / "external"
    for k, (face, label) in enumerate(zip(test.images[:60], test.labels[:60], strict=True)):
        folder = root / folders[FERPLUS_CLASSES[label]]
        folder.mkdir(parents=True, exist_ok=True)
        # a larger grey PNG, as such sets come; the whole image is the face
        cv2.imwrite(str(folder / f"{k:03d}.png"), cv2.resize(face, (96, 96), interpolation=cv2.INTER_NEAREST))
    (root / "bored").mkdir()
    cv2.imwrite(str(root / "bored" / "x.png"), test.images[0])
    (root / "sad" / "notes.png").write_bytes(b"not an image")
    source = _random_checkpoint(tmp_path / "model.pt")
    metrics = evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(
        ["--checkpoint", str(source), "--external", str(root)]))
    out = capsys.readouterr().out
    assert "external set external (whole images; left out: folders bored; 1 unreadable files)" in out
    model, meta = load_checkpoint(source)
    read_back = np.stack([cv2.resize(cv2.resize(f, (96, 96), interpolation=cv2.INTER_NEAREST), (48, 48),
                                     interpolation=cv2.INTER_AREA) for f in test.images[:60]])
    expected = predict_logits(model, read_back, meta.mean, meta.std, torch.device("cpu"), amp=False)[:, :8].argmax(1)
    assert metrics["accuracy"] == pytest.approx(float((expected == test.labels[:60]).mean()))  # order-free
    confusion = np.array(metrics["confusion"])
    assert confusion.sum() == len(read_back) and confusion.sum(axis=1).tolist() == np.bincount(
        test.labels[:60], minlength=8).tolist()
    with pytest.raises(ValueError, match="holds no readable image in a folder named after a FER\\+ class"):
        evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(
            ["--checkpoint", str(source), "--external", str(root / "bored")]))


def test_evaluate_prior_shift_subtracts_tau_log_training_prior(small_data: Path, isolated_cache: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str],
                                                               one_thread: None) -> None:
    source = _random_checkpoint(tmp_path / "model.pt")
    argv = ["--checkpoint", str(source), "--data-dir", str(small_data), "--split", "valid", "--prior-shift", "1.5"]
    metrics = evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(argv))
    assert "logits shifted by -1.5 x log(training prior)" in capsys.readouterr().out
    splits = load_splits(DataPaths.in_folder(small_data), soft_targets=True)
    model, meta = load_checkpoint(source)
    logits = predict_logits(model, splits["valid"].images, meta.mean, meta.std, torch.device("cpu"), amp=False)[:, :8]
    prior = splits["train"].targets.sum(0) / splits["train"].targets.sum()
    shifted = (logits - 1.5 * np.log(np.maximum(prior, 1 / splits["train"].targets.sum()))).argmax(1)
    assert metrics["accuracy"] == pytest.approx(float((shifted == splits["valid"].labels).mean()))
    assert not np.array_equal(shifted, logits.argmax(1))  # the shift changed some answers
