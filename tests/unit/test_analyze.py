"""`fermonitor analyze`: a video with real faces into a CSV, error exits, SIGKILL leaves a valid CSV."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from fermonitor import cli
from fermonitor.core import classifier as classifier_module
from fermonitor.core.checkpoint import FERPLUS_CLASSES
from fermonitor.core.detection import create_detector
from fermonitor.core.session import CSV_HEADER, session_json_path

REPO = Path(__file__).resolve().parents[2]
FIRST_ROWS_DEADLINE_S = 600  # the shared test machine can be slow to start a Python process


@pytest.fixture(scope="module")
def detectable_faces(fer_faces: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Two real faces the default detector (YuNet) finds at 96 px on a plain background."""
    images, _ = fer_faces
    detector = create_detector("yunet")
    chosen = []
    for face in images:
        canvas = np.full((176, 176, 3), 120, np.uint8)
        canvas[40:136, 40:136] = np.kron(face, np.ones((2, 2), np.uint8))[:, :, None]
        if any(abs(x + w / 2 - 88) < 24 and abs(y + h / 2 - 88) < 24 for x, y, w, h in (d.box for d in detector.detect(canvas))):
            chosen.append(face)
        if len(chosen) == 2:
            return np.stack(chosen)
    pytest.fail("fewer than two FER faces are found by the YuNet detector")


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def errors_of(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("fermonitor:")]


def test_analyze_writes_rows_for_the_people_in_a_video(tmp_path: Path, make_face_video, detectable_faces,
                                                       tiny_checkpoint: Path, capsys) -> None:
    video = make_face_video(detectable_faces, seconds=3.0, fps=10)
    out = tmp_path / "session.csv"
    status = cli.main(["analyze", str(video), "--csv", str(out), "--model", str(tiny_checkpoint),
                       "--device", "cpu", "--rate", "2"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert out.read_text().splitlines()[0] == CSV_HEADER
    rows = read_rows(out)
    steps = len(range(0, 30, 5))  # frames 0, 5, ..., 25 of the 30
    assert captured.out == (f"{len(rows)} rows for 2 people in {steps} steps ({2.5:.1f} s of video) "
                            f"written to {out}\n")
    # Steps at 0, 0.5, ..., 2.5 s of video time; people are confirmed at their second step.
    assert {r["t_seconds"] for r in rows} <= {f"{0.5 * k:.3f}" for k in range(6)}
    assert {r["frame_index"] for r in rows} <= {str(5 * k) for k in range(6)}
    assert {r["person_id"] for r in rows} == {"1", "2"}
    assert len(rows) >= 8  # 2 people x at least 4 of the 6 steps
    for row in rows:
        probs = [float(row[c]) for c in FERPLUS_CLASSES]
        assert sum(probs) == pytest.approx(1.0, abs=2e-3)
        assert row["indicator"] in {"positive", "neutral", "negative"}
        assert int(row["w"]) > 60 and 0 <= int(row["x"]) < 320
    # Person 1 is the left face.
    left = [int(r["x"]) for r in rows if r["person_id"] == "1"]
    right = [int(r["x"]) for r in rows if r["person_id"] == "2"]
    assert max(left) < min(right)
    described = json.loads(session_json_path(out).read_text())
    assert described["source"] == f"video:{video}" and described["end"] is not None
    assert described["model"]["arch"] == "vgg19" and described["settings"]["analysis"]["rate_hz"] == 2.0
    assert "warning" not in captured.err  # the whole video was read


def test_a_video_that_breaks_part_way_ends_cleanly(tmp_path: Path, make_face_video, detectable_faces,
                                                   tiny_checkpoint: Path) -> None:
    from fermonitor.core.analyze import analyze_video

    video = make_face_video(detectable_faces, seconds=4.0, fps=10)
    broken = tmp_path / "broken.avi"
    data = video.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    out = tmp_path / "broken.csv"
    seen: list[float] = []
    summary = analyze_video(broken, out, rate_hz=2, device="cpu", model=tiny_checkpoint,
                            progress=lambda t, total: seen.append(t))
    rows = read_rows(out)
    assert summary.rows == len(rows) > 0
    assert max(float(r["t_seconds"]) for r in rows) < 3.5
    assert seen == sorted(seen) and len(seen) == summary.steps
    assert json.loads(session_json_path(out).read_text())["end"] is not None
    assert summary.ended_early and summary.duration_s == pytest.approx(4.0)


def test_the_command_warns_when_a_video_is_cut_short(tmp_path: Path, make_face_video, detectable_faces,
                                                     tiny_checkpoint: Path, capsys) -> None:
    video = make_face_video(detectable_faces, seconds=4.0, fps=10)
    broken = tmp_path / "broken.avi"
    data = video.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    out = tmp_path / "broken.csv"
    assert cli.main(["analyze", str(broken), "--csv", str(out), "--model", str(tiny_checkpoint), "--device", "cpu",
                     "--no-progress"]) == 0
    [warning] = errors_of(capsys)
    assert warning.startswith(f"fermonitor: warning: video {broken} stopped decoding at ")
    assert "of the 4.0 s it declares (cut short or damaged?); the rows up to there are written" in warning
    assert len(read_rows(out)) > 0


def test_options_that_would_lose_data_or_be_ignored(tmp_path: Path, make_face_video, detectable_faces,
                                                    tiny_checkpoint: Path, capsys) -> None:
    video = make_face_video(detectable_faces, seconds=0.5, fps=10)
    before = video.read_bytes()
    assert cli.main(["analyze", str(video), "--csv", str(video), "--model", str(tiny_checkpoint)]) == 1
    assert errors_of(capsys) == [f"fermonitor: error: CSV file {video} is the video itself; choose another name "
                                 "for the CSV"]
    assert video.read_bytes() == before
    described_over = tmp_path / "talk.session.json"  # a video named like the CSV's session file
    described_over.write_bytes(before)
    assert cli.main(["analyze", str(described_over), "--csv", str(tmp_path / "talk.csv"),
                     "--model", str(tiny_checkpoint)]) == 1
    assert errors_of(capsys) == [f"fermonitor: error: CSV file {tmp_path / 'talk.csv'} would write its session "
                                 f"description over the video {described_over}; choose another name for the CSV"]
    assert described_over.read_bytes() == before and not (tmp_path / "talk.csv").exists()
    missing = tmp_path / "setings.json"
    assert cli.main(["analyze", str(video), "--csv", str(tmp_path / "o.csv"), "--settings", str(missing)]) == 1
    assert errors_of(capsys) == [f"fermonitor: error: settings file {missing} does not exist"]
    assert not (tmp_path / "o.csv").exists()
    # --model before the command counts, after it too (the later one wins).
    args = cli.build_parser().parse_args(["--model", "a.pt", "analyze", str(video), "--csv", "o.csv"])
    assert args.model == "a.pt"
    args = cli.build_parser().parse_args(["--model", "a.pt", "analyze", str(video), "--csv", "o.csv", "--model", "b.pt"])
    assert args.model == "b.pt"
    for value, reason in [("inf", "inf is not a number of seconds from 0 to 999999"),
                          ("nan", "nan is not a number of seconds from 0 to 999999"),
                          ("-1", "-1 is not a number of seconds from 0 to 999999"),
                          ("abc", "'abc' is not a number of seconds")]:
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["--exit-after", value])
        assert capsys.readouterr().err.splitlines()[-1] == f"fermonitor: error: argument --exit-after: {reason}"


def test_a_csv_that_is_a_link_to_the_video_or_inside_it_is_refused_before_anything_is_written(
        tmp_path: Path, make_face_video, detectable_faces, tiny_checkpoint: Path, capsys) -> None:
    video = make_face_video(detectable_faces, seconds=0.5, fps=10)
    before = video.read_bytes()
    hard_link = tmp_path / "hard.csv"
    os.link(video, hard_link)  # the same inode: opening it for writing would truncate the video
    assert cli.main(["analyze", str(video), "--csv", str(hard_link), "--model", str(tiny_checkpoint)]) == 1
    assert errors_of(capsys) == [f"fermonitor: error: CSV file {hard_link} is a link to the video {video}; "
                                 "choose another name for the CSV"]
    assert video.read_bytes() == before and not session_json_path(hard_link).exists()
    inside = video / "out.csv"
    assert cli.main(["analyze", str(video), "--csv", str(inside), "--model", str(tiny_checkpoint)]) == 1
    assert errors_of(capsys) == [f"fermonitor: error: CSV file {inside} would be inside the video {video}, which "
                                 "is a file, not a folder; choose another name for the CSV"]
    assert video.read_bytes() == before


def test_an_empty_csv_path_is_named(tmp_path: Path, make_face_video, detectable_faces, capsys) -> None:
    video = make_face_video(detectable_faces, seconds=0.5, fps=10)
    assert cli.main(["analyze", str(video), "--csv", ""]) == 1
    assert errors_of(capsys) == ["fermonitor: error: --csv '': the path is empty"]
    assert cli.main(["--csv", ""]) == 1  # the app, before any window
    assert errors_of(capsys) == ["fermonitor: error: --csv '': the path is empty"]


def test_unreadable_video(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    video = tmp_path / "lecture.mp4"
    video.write_text("not a video")
    out = tmp_path / "out.csv"
    assert cli.main(["analyze", str(video), "--csv", str(out), "--model", str(tiny_checkpoint)]) == 1
    assert errors_of(capsys) == [f"fermonitor: error: video {video} cannot be read (not a video OpenCV can decode)"]
    assert not out.exists()


def test_unwritable_csv(tmp_path: Path, make_face_video, detectable_faces, tiny_checkpoint: Path, capsys) -> None:
    video = make_face_video(detectable_faces, seconds=0.5, fps=10)
    out = tmp_path / "no-such-folder" / "out.csv"
    assert cli.main(["analyze", str(video), "--csv", str(out), "--model", str(tiny_checkpoint),
                     "--device", "cpu"]) == 1
    [line] = errors_of(capsys)
    assert line.startswith(f"fermonitor: error: CSV file {out} cannot be written")


def test_corrupt_and_pickled_models(tmp_path: Path, make_face_video, detectable_faces, capsys) -> None:
    import argparse

    import torch

    video = make_face_video(detectable_faces, seconds=0.5, fps=10)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(2048))
    assert cli.main(["analyze", str(video), "--csv", str(tmp_path / "a.csv"), "--model", str(corrupt)]) == 1
    [line] = errors_of(capsys)
    assert line.startswith(f"fermonitor: error: model file {corrupt} is not a readable checkpoint")
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "fermonitor-checkpoint", "payload": argparse.Namespace(run="os.system")}, pickled)
    assert cli.main(["analyze", str(video), "--csv", str(tmp_path / "b.csv"), "--model", str(pickled)]) == 1
    [line] = errors_of(capsys)
    assert line.startswith(f"fermonitor: error: model file {pickled} holds pickled objects and was rejected")
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()


def test_a_model_with_std_0_or_input_size_0_is_refused_before_the_csv_is_written(
        tmp_path: Path, make_face_video, detectable_faces, capsys) -> None:
    import torch

    from fermonitor.core.checkpoint import ModelMeta, save_checkpoint

    video = make_face_video(detectable_faces, seconds=0.5, fps=10)
    out = tmp_path / "o.csv"
    for name, meta, message in [
        ("std0.pt", ModelMeta(arch="vgg19", classes=FERPLUS_CLASSES, std=0.0),
         "has normalisation std 0.0: it must be a finite number above 0"),
        ("size0.pt", ModelMeta(arch="vgg19", classes=FERPLUS_CLASSES, input_size=0),
         "has input size 0: it must be from 1 to 1024 pixels"),
    ]:
        model = tmp_path / name  # the description is refused before the weights are read
        save_checkpoint(model, torch.nn.Linear(1, 1), meta)
        assert cli.main(["analyze", str(video), "--csv", str(out), "--model", str(model), "--device", "cpu"]) == 1
        assert errors_of(capsys) == [f"fermonitor: error: model file {model} {message}"]
        assert not out.exists()


def test_missing_model_says_how_to_get_one(tmp_path: Path, make_face_video, detectable_faces,
                                           monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    video = make_face_video(detectable_faces, seconds=0.5, fps=10)
    monkeypatch.setattr(classifier_module, "default_model_path",
                        lambda *args, **kwargs: tmp_path / "models" / "fermonitor_vgg19.pt")
    assert cli.main(["analyze", str(video), "--csv", str(tmp_path / "out.csv")]) == 1
    [line] = errors_of(capsys)
    assert "no expression model is installed" in line and "python -m training export" in line


def test_bad_rate_and_detector(tmp_path: Path, make_face_video, detectable_faces, tiny_checkpoint: Path,
                               capsys) -> None:
    video = make_face_video(detectable_faces, seconds=0.5, fps=10)
    for rate, shown in [("1e308", "1e+308"), ("0", "0"), ("-2", "-2"), ("nan", "nan"), ("inf", "inf"),
                        ("1001", "1001")]:
        assert cli.main(["analyze", str(video), "--csv", str(tmp_path / "o.csv"), "--rate", rate,
                         "--model", str(tiny_checkpoint)]) == 1
        assert errors_of(capsys) == [f"fermonitor: error: analysis rate {shown} Hz must be above 0 and at most 1000"]
    assert not (tmp_path / "o.csv").exists()
    assert cli.main(["analyze", str(video), "--csv", str(tmp_path / "o.csv"), "--model", str(tiny_checkpoint),
                     "--device", "cpu", "--detector", "yolo"]) == 1
    assert errors_of(capsys) == ["fermonitor: error: unknown detector 'yolo'; available: haar, yunet"]


def start_analyze_until_rows(video: Path, model: Path, out: Path) -> subprocess.Popen[bytes]:
    """Start ``fermonitor analyze`` in a child process and return it once its CSV holds 4 rows."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "fermonitor", "analyze", str(video), "--csv", str(out), "--model", str(model),
         "--device", "cpu", "--rate", "10", "--no-progress"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + FIRST_ROWS_DEADLINE_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            pytest.fail(f"analyze ended before the signal: {child.stderr.read().decode()[-500:]}")
        if out.exists() and out.read_text(encoding="utf-8").count("\n") >= 5:
            return child
        time.sleep(0.05)
    child.kill()
    child.wait()
    pytest.fail("analyze wrote no rows in time")


@pytest.fixture()
def onnx_model(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    """The tiny checkpoint's ONNX export: a child process running it does not pay for importing torch."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from fermonitor.core.checkpoint import load_checkpoint
    from training.export import export_onnx

    model, meta = load_checkpoint(tiny_checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return export_onnx(model, meta, tmp_path / "tiny.onnx")


def assert_whole_rows(out: Path) -> list[dict[str, str]]:
    """The CSV has its header and only whole rows (no line cut short); returns the rows."""
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n"), "the last line is cut short"
    lines = text.splitlines()
    assert lines[0] == CSV_HEADER
    assert len(lines) >= 5
    columns = CSV_HEADER.split(",")
    for row in csv.reader(lines[1:]):
        assert len(row) == len(columns)
    rows = read_rows(out)
    assert all(r["indicator"] in {"positive", "neutral", "negative"} for r in rows)
    return rows


def test_sigkill_mid_run_leaves_a_valid_csv(tmp_path: Path, make_face_video, detectable_faces,
                                            onnx_model: Path) -> None:
    video = make_face_video(detectable_faces, seconds=30.0, fps=10, name="long.avi")
    out = tmp_path / "killed.csv"
    child = start_analyze_until_rows(video, onnx_model, out)
    try:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert_whole_rows(out)
    # Killed: the JSON is there, without an end.
    assert json.loads(session_json_path(out).read_text())["end"] is None


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be sent to a process on Windows")
def test_sigterm_mid_run_closes_the_session_like_ctrl_c(tmp_path: Path, make_face_video, detectable_faces,
                                                       onnx_model: Path) -> None:
    video = make_face_video(detectable_faces, seconds=30.0, fps=10, name="long.avi")
    out = tmp_path / "terminated.csv"
    child = start_analyze_until_rows(video, onnx_model, out)
    try:
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 128 + signal.SIGTERM
    assert err.decode().splitlines() == ["fermonitor: terminated by SIGTERM"]
    rows = assert_whole_rows(out)
    described = json.loads(session_json_path(out).read_text())
    assert described["end"] is not None
    assert described["rows"] == len(rows)  # every row written reached the CSV, and the JSON counts them
    assert float(rows[-1]["t_seconds"]) < 29.0  # ended part way, not at the video's end


def test_the_app_refuses_a_csv_path_that_is_a_folder_before_it_starts(tmp_path: Path, capsys) -> None:
    assert cli.main(["--csv", str(tmp_path)]) == 1
    assert errors_of(capsys) == [f"fermonitor: error: CSV path {tmp_path} is a folder"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_many_videos_with_a_corrupt_one_the_others_finish_and_the_status_counts_the_failure(
        tmp_path: Path, make_face_video, detectable_faces, tiny_checkpoint: Path, jobs: int) -> None:
    folder = tmp_path / "lectures"
    folder.mkdir()
    for name in ("monday.avi", "tuesday.avi"):
        make_face_video(detectable_faces, seconds=1.0, fps=10, name=name).replace(folder / name)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))  # a header, then noise
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "csv"
    run = subprocess.run([sys.executable, "-m", "fermonitor", "analyze", str(folder), "--out", str(out),
                          "--jobs", str(jobs), "--model", str(tiny_checkpoint), "--device", "cpu"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stderr  # one failed
    failed = [line for line in run.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and str(folder / "broken.mp4") in failed[0] and "cannot be read" in failed[0]
    done = [line for line in run.stdout.splitlines() if line.startswith("ok ")]
    assert len(done) == 2 and "2 of 3 videos analysed, 1 failed" in run.stdout
    for name in ("monday", "tuesday"):
        assert read_rows(out / f"{name}.csv")  # rows for the faces in each
        assert json.loads(session_json_path(out / f"{name}.csv").read_text())["end"]
    assert not (out / "broken.csv").exists() and not (out / "notes.csv").exists()


def test_many_videos_need_out_and_names_that_do_not_clash(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x.mp4").write_bytes(b"")
    (b / "x.mp4").write_bytes(b"")
    assert cli.main(["analyze", str(a / "x.mp4"), str(b / "x.mp4"), "--csv", str(tmp_path / "o.csv")]) == 1
    assert errors_of(capsys) == ["fermonitor: error: --csv names one CSV but 2 videos were given: use --out DIR"]
    assert cli.main(["analyze", str(a / "x.mp4"), str(b / "x.mp4"), "--out", str(tmp_path / "o")]) == 1
    assert "would all write" in errors_of(capsys)[0] and not (tmp_path / "o").exists()
    assert cli.main(["analyze", str(a / "x.mp4")]) == 1
    assert errors_of(capsys) == ["fermonitor: error: analyze needs --csv OUT (one video) or --out DIR"]


def test_the_stage_profile_covers_every_stage(tmp_path: Path, make_face_video, detectable_faces,
                                              tiny_checkpoint: Path) -> None:
    from fermonitor.core.analyze import analyze_video

    video = make_face_video(detectable_faces, seconds=2.0, fps=10)
    summary = analyze_video(video, tmp_path / "p.csv", model=tiny_checkpoint, device="cpu")
    assert list(summary.stage_seconds) == ["decode", "convert", "detection", "tracking", "crops", "classification", "csv"]
    assert all(seconds > 0 for seconds in summary.stage_seconds.values())
    assert summary.wall_seconds >= summary.stage_seconds["detection"]


def test_a_video_that_declares_an_absurd_frame_rate_is_refused_by_name(tmp_path: Path, capsys) -> None:
    av = pytest.importorskip("av")
    from fractions import Fraction

    path = tmp_path / "absurd.mp4"
    with av.open(str(path), "w") as container:  # frames 1 ns apart: the container declares 1e9 fps
        stream = container.add_stream("libx264", rate=10**9)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 10**9)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10**9)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert cli.main(["analyze", str(path), "--csv", str(tmp_path / "o.csv")]) == 1
    assert errors_of(capsys) == [f"fermonitor: error: video {path} declares 1e+09 frames per second, more than "
                                 "any camera records (1000): its frame times cannot be trusted"]
    assert not (tmp_path / "o.csv").exists()
