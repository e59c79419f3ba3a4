"""Session CSV schema and round trip, the session JSON, unwritable paths."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from fermonitor.core import session
from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta
from fermonitor.core.pipeline import Pipeline
from fermonitor.core.results import FaceObservation, Frame, FrameResult
from fermonitor.core.session import (
    CSV_HEADER,
    SessionError,
    SessionWriter,
    check_not_the_video,
    new_session_path,
    session_json_path,
)
from fermonitor.core.settings import Settings, settings_from_dict, settings_to_dict

EXPECTED_HEADER = ("timestamp,t_seconds,frame_index,person_id,person_name,x,y,w,h,neutral,happiness,surprise,"
                   "sadness,anger,disgust,fear,contempt,top_expression,top_probability,indicator")
META = ModelMeta(arch="vgg19", classes=FERPLUS_CLASSES, metrics={"test_accuracy": 0.87})
WALL = datetime(2026, 3, 2, 10, 15, 30, 250000, tzinfo=timezone(timedelta(hours=1)))


def observation(pid: int, happiness: float) -> FaceObservation:
    probs = [0.0] * 8
    probs[1] = happiness
    probs[0] = 1.0 - happiness
    top = "happiness" if happiness >= 0.5 else "neutral"
    return FaceObservation(pid, (10 * pid, 20, 64, 72), tuple(probs), top, max(happiness, 1 - happiness),
                           "positive" if top == "happiness" else "neutral")


def test_header_is_exact() -> None:
    assert CSV_HEADER == EXPECTED_HEADER


def test_rows_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "lecture.csv"
    with SessionWriter(path, "video:lecture.mp4", META, Settings()) as writer:
        writer.write(FrameResult(12, 6.0, WALL, (640, 480), (observation(1, 0.123456), observation(2, 0.9))),
                     names={2: "Ada, L."})
        # A step where person 2 is absent writes a row for person 1 only.
        writer.write(FrameResult(13, 6.5, WALL + timedelta(seconds=0.5), (640, 480), (observation(1, 0.6),),
                                 absent_ids=(2,)))
        writer.write(FrameResult(14, 7.0, WALL, (640, 480), ()))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == EXPECTED_HEADER
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    first, second, third = rows
    assert first["timestamp"] == "2026-03-02T10:15:30.250+01:00"
    assert datetime.fromisoformat(first["timestamp"]) == WALL
    assert (first["t_seconds"], first["frame_index"], first["person_id"], first["person_name"]) == ("6.000", "12", "1", "")
    assert (first["x"], first["y"], first["w"], first["h"]) == ("10", "20", "64", "72")
    assert first["happiness"] == "0.1235" and first["neutral"] == "0.8765" and first["contempt"] == "0.0000"
    assert (first["top_expression"], first["top_probability"], first["indicator"]) == ("neutral", "0.8765", "neutral")
    assert second["person_name"] == "Ada, L." and second["indicator"] == "positive"
    assert third["person_id"] == "1" and third["t_seconds"] == "6.500"
    assert sum(float(first[c]) for c in FERPLUS_CLASSES) == pytest.approx(1.0, abs=1e-3)
    assert writer.rows_written == 3 and writer.steps_written == 3


class ReversedModel:
    """A classifier whose classes, and so its outputs, are in reverse FER+ order (contempt first)."""

    classes = tuple(reversed(FERPLUS_CLASSES))
    input_size = 48
    meta = ModelMeta("reversed", tuple(reversed(FERPLUS_CLASSES)))

    def predict(self, faces: np.ndarray) -> np.ndarray:
        # contempt 0/28, fear 1/28, ..., neutral 7/28 for every face
        return np.tile(np.arange(8, dtype=np.float32) / 28, (len(faces), 1))


class OneFace:
    def detect(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        return [(8, 8, 48, 48)]


def test_the_pipeline_puts_the_model_order_into_the_header_order_once(tmp_path: Path) -> None:
    pipeline = Pipeline(ReversedModel(), OneFace(), settings_from_dict({"tracking": {"min_hits": 1}}))
    result = pipeline.process(Frame(np.zeros((64, 64, 3), np.uint8), 0.0, 0, WALL))
    with SessionWriter(tmp_path / "s.csv", "webcam:0", ReversedModel.meta, Settings(),
                       classes=pipeline.classes) as writer:
        writer.write(result)
    with open(tmp_path / "s.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert (row["neutral"], row["happiness"], row["contempt"]) == ("0.2500", "0.2143", "0.0000")
    assert row["top_expression"] == "neutral"


def test_probabilities_in_another_order_than_the_header_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"takes probabilities in FER\+ order .* as the pipeline gives them; "
                                         r"got contempt, fear"):
        SessionWriter(tmp_path / "s.csv", "webcam:0", None, Settings(), classes=tuple(reversed(FERPLUS_CLASSES)))
    assert not (tmp_path / "s.csv").exists()


def test_session_json_beside_the_csv(tmp_path: Path) -> None:
    path = tmp_path / "lecture.csv"
    writer = SessionWriter(path, "region:0,0,640,480", META, Settings())
    json_path = session_json_path(path)
    assert json_path == tmp_path / "lecture.session.json"
    during = json.loads(json_path.read_text())
    assert during["end"] is None and during["source"] == "region:0,0,640,480"
    writer.write(FrameResult(0, 0.0, WALL, (640, 480), (observation(1, 0.9),)), names={1: "Grace"})
    writer.close()
    writer.close()  # harmless
    after = json.loads(json_path.read_text())
    assert after["model"]["arch"] == "vgg19" and after["model"]["metrics"] == {"test_accuracy": 0.87}
    assert after["settings"] == settings_to_dict(Settings())
    assert datetime.fromisoformat(after["start"]) <= datetime.fromisoformat(after["end"])
    assert after["rows"] == 1 and after["person_names"] == {"1": "Grace"}
    with pytest.raises(SessionError, match="already closed"):
        writer.write(FrameResult(1, 0.5, WALL, (640, 480), ()))


def test_new_session_names_never_reuse_a_file(tmp_path: Path) -> None:
    now = datetime(2026, 12, 1, 9, 30, 5)
    first = new_session_path(tmp_path, now)
    assert first == tmp_path / "session-20261201-093005.csv"
    SessionWriter(first, "webcam:0", None, Settings()).close()
    second = new_session_path(tmp_path, now)  # started again within the same second
    assert second == tmp_path / "session-20261201-093005-2.csv"
    session_json_path(second).write_text("{}")  # a JSON left without its CSV also holds the name
    assert new_session_path(tmp_path, now) == tmp_path / "session-20261201-093005-3.csv"


def test_a_cleared_name_goes_back_to_the_anonymous_id(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    with SessionWriter(path, "webcam:0", None, Settings()) as writer:
        writer.write(FrameResult(0, 0.0, WALL, (640, 480), (observation(1, 0.9),)), names={1: "Ada"})
        writer.write(FrameResult(1, 0.5, WALL, (640, 480), (observation(1, 0.9),)))  # None: names as before
        writer.write(FrameResult(2, 1.0, WALL, (640, 480), (observation(1, 0.9),)), names={})
    with open(path, newline="") as handle:
        assert [row["person_name"] for row in csv.DictReader(handle)] == ["Ada", "Ada", ""]
    assert json.loads(session_json_path(path).read_text())["person_names"] == {}


def test_unwritable_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match=r"CSV file .*missing-folder/out\.csv cannot be written"):
        SessionWriter(tmp_path / "missing-folder" / "out.csv", "webcam:0", None, Settings())
    with pytest.raises(SessionError, match="cannot be written"):
        SessionWriter(tmp_path, "webcam:0", None, Settings())


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need extra rights on Windows")
def test_a_csv_that_would_replace_the_video_is_refused_by_any_name(tmp_path: Path) -> None:
    video = tmp_path / "lecture.mp4"
    video.write_bytes(b"the recording")
    hard, soft = tmp_path / "hard.csv", tmp_path / "soft.csv"
    os.link(video, hard)
    soft.symlink_to(video)
    for path in (hard, soft):
        with pytest.raises(ValueError) as info:
            check_not_the_video(path, video)
        assert str(info.value) == f"CSV file {path} is a link to the video {video}; choose another name for the CSV"
    with pytest.raises(ValueError) as info:
        check_not_the_video(tmp_path / "." / "lecture.mp4", video)
    assert str(info.value) == f"CSV file {video} is the video itself; choose another name for the CSV"
    (tmp_path / "talk.session.json").symlink_to(video)
    with pytest.raises(ValueError) as info:
        check_not_the_video(tmp_path / "talk.csv", video)
    assert str(info.value) == (f"CSV file {tmp_path / 'talk.csv'} would write its session description over the "
                               f"video {video}; choose another name for the CSV")
    with pytest.raises(ValueError) as info:
        check_not_the_video(hard / "sub" / "out.csv", video)
    assert str(info.value) == (f"CSV file {hard / 'sub' / 'out.csv'} would be inside the video {video}, which is "
                               "a file, not a folder; choose another name for the CSV")
    check_not_the_video(tmp_path / "other.csv", video)  # a CSV of its own is fine, also one not there yet
    check_not_the_video(tmp_path / "other.csv", tmp_path / "missing.mp4")
    assert video.read_bytes() == b"the recording"


def test_classes_other_than_ferplus_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs the FER\\+ classes"):
        SessionWriter(tmp_path / "x.csv", "webcam:0", None, Settings(), classes=("happy", "sad"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_at_the_start_names_the_csv_and_leaves_no_session_file(tmp_path: Path) -> None:
    csv_path = tmp_path / "out.csv"
    csv_path.symlink_to("/dev/full")  # a real device on which every write fails: No space left on device
    with pytest.raises(SessionError, match=rf"^CSV file {csv_path} cannot be written: the disk holding folder "
                                           rf"{tmp_path} is full \(No space left on device\)$"):
        SessionWriter(csv_path, "webcam:0", META, Settings())
    assert not session_json_path(csv_path).exists()


def test_a_disk_that_fills_up_keeps_the_rows_leaves_no_temporary_file_and_names_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = {"full": False}
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    class FillingFile(io.FileIO):
        """The CSV on a disk that fills up: once full, every write fails as a full disk's does."""

        def write(self, data):  # type: ignore[override]
            if disk["full"]:
                raise full
            return super().write(data)

    write_text = Path.write_text

    def filling_write_text(path: Path, data: str, *args: object, **kwargs: object) -> int:
        if disk["full"]:
            path.open("w").close()  # the file is created, then nothing fits in it
            raise full
        return write_text(path, data, *args, **kwargs)

    monkeypatch.setattr(session.io, "FileIO", FillingFile)
    monkeypatch.setattr(Path, "write_text", filling_write_text)
    csv_path = tmp_path / "lecture.csv"
    writer = SessionWriter(csv_path, "webcam:0", META, Settings())
    assert writer.write(FrameResult(0, 0.0, WALL, (640, 480), (observation(1, 0.9), observation(2, 0.2)))) == 2
    disk["full"] = True
    in_folder = f"the disk holding folder {tmp_path} is full (No space left on device)"
    with pytest.raises(SessionError) as failed:
        writer.write(FrameResult(1, 0.5, WALL, (640, 480), (observation(1, 0.9),)))
    assert str(failed.value) == f"CSV file {csv_path} cannot be written: {in_folder}"
    with pytest.raises(SessionError) as failed:
        writer.close()  # the end time cannot be recorded either, and that is said
    assert str(failed.value) == f"session file {session_json_path(csv_path)} beside {csv_path} cannot be written: {in_folder}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lecture.csv", "lecture.session.json"]
    with open(csv_path, newline="") as handle:
        assert [row["person_id"] for row in csv.DictReader(handle)] == ["1", "2"]  # the rows written stay
    assert json.loads(session_json_path(csv_path).read_text())["start"]  # the JSON of the start, whole


def test_a_session_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    csv_path = tmp_path / "out.csv"
    json_path = session_json_path(csv_path)
    (tmp_path / (json_path.name + ".tmp")).mkdir()  # where the JSON is written before it is renamed
    with pytest.raises(SessionError, match=rf"^session file {json_path} beside {csv_path} cannot be written "
                                           r"\(Is a directory\)$"):
        SessionWriter(csv_path, "webcam:0", META, Settings())


# Runs in a child process: a limit on the size of the files a process writes (RLIMIT_FSIZE) makes a
# write beyond it fail with "File too large", as on a full disk; in pytest's own process it would
# also stop pytest writing its report.
FULL_DISK_CHILD = """
import json, resource, signal, sys
from datetime import datetime, timezone
from pathlib import Path
from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta
from fermonitor.core.results import FaceObservation, FrameResult
from fermonitor.core.session import SessionError, SessionWriter, session_json_path
from fermonitor.core.settings import Settings

csv_path = Path(sys.argv[1])
writer = SessionWriter(csv_path, "webcam:0", ModelMeta("vgg19", FERPLUS_CLASSES), Settings())
face = FaceObservation(1, (10, 20, 64, 72), (0.3, 0.7) + (0.0,) * 6, "happiness", 0.7, "positive")
step = FrameResult(0, 0.0, datetime.now(timezone.utc), (640, 480), (face, face, face))
before = csv_path.stat().st_size
written = writer.write(step)
step_bytes = csv_path.stat().st_size - before
# The limit falls in the middle of a step (in its second row), with room for the session JSON.
whole_steps = session_json_path(csv_path).stat().st_size // step_bytes + 2
limit = csv_path.stat().st_size + whole_steps * step_bytes + step_bytes // 2
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not the signal that would end the process
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
error = None
try:
    for _ in range(whole_steps + 10):
        written += writer.write(step)
except SessionError as exc:
    error = str(exc)
writer.close()  # the end time still reaches the session JSON
print(json.dumps({"written": written, "expected": 3 * (1 + whole_steps), "error": error}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_write_that_fails_part_way_keeps_every_whole_row(tmp_path: Path) -> None:
    csv_path = tmp_path / "out.csv"
    done = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(csv_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["error"] == f"CSV file {csv_path} cannot be written (File too large)"
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert report["written"] == report["expected"] == len(rows)  # the part-written step was cut off
    assert all(row["indicator"] == "positive" for row in rows)
    assert csv_path.read_bytes().endswith(b"\n")
    assert json.loads(session_json_path(csv_path).read_text())["end"]


@pytest.mark.skipif(sys.platform != "linux", reason="fsync on /dev/null fails with EINVAL on Linux")
def test_a_csv_where_fsync_cannot_work_is_still_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    csv_path = tmp_path / "out.csv"
    csv_path.symlink_to(os.devnull)  # a real device: writes succeed, fsync fails with EINVAL
    writer = SessionWriter(csv_path, "webcam:0", META, Settings())
    with caplog.at_level("WARNING", logger="fermonitor.core.session"):
        assert writer.write(FrameResult(0, 0.0, WALL, (640, 480), (observation(1, 0.9),))) == 1
        writer.flush()
        writer.flush()
        writer.close()
    assert caplog.text.count(f"CSV file {csv_path} cannot be synced to disk") == 1
    assert json.loads(session_json_path(csv_path).read_text())["end"]

