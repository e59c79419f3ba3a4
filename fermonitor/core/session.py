"""The session CSV, written as the analysis goes, and the session JSON beside it.

One row per visible person per analysis step. People who are absent in a step get no row (they
have no box and no probabilities); absence shows in the class aggregate of the timeline, and in
the CSV as the gap in that person's rows. Each step's rows go to the file in one write and reach
the operating system at once, so a killed process leaves only whole lines; ``os.fsync`` runs at
least every ``FSYNC_INTERVAL_S``.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from fermonitor import __version__
from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta
from fermonitor.core.results import FrameResult
from fermonitor.core.settings import Settings, settings_to_dict

log = logging.getLogger(__name__)

CSV_COLUMNS: tuple[str, ...] = (
    "timestamp", "t_seconds", "frame_index", "person_id", "person_name", "x", "y", "w", "h",
    *FERPLUS_CLASSES, "top_expression", "top_probability", "indicator",
)
CSV_HEADER = ",".join(CSV_COLUMNS)
FSYNC_INTERVAL_S = 1.0  # rows reach the disk itself at least this often
PROBABILITY_DECIMALS = 4


class SessionError(OSError):
    """A session file that cannot be written; the message names the path."""


_DISK_FULL = frozenset(filter(None, (errno.ENOSPC, getattr(errno, "EDQUOT", None))))


def _write_error(subject: str, folder: Path, exc: OSError) -> SessionError:
    """``{subject} cannot be written (reason)``; on a full disk (or quota) it names the folder that
    needs room, since that is where the user has to make some."""
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_FULL:
        return SessionError(f"{subject} cannot be written: the disk holding folder {folder} is full ({reason})")
    return SessionError(f"{subject} cannot be written ({reason})")


def session_json_path(csv_path: str | Path) -> Path:
    """Where the session JSON of a CSV goes: ``lecture.csv`` -> ``lecture.session.json``."""
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.stem + ".session.json")


def check_not_the_video(csv_path: str | Path, video_path: str | Path) -> None:
    """Refuse a session CSV whose file, or session JSON beside it, would replace the analysed video,
    by its own name or through a link (symbolic or hard), or whose folder would be the video.

    Raises
    ------
    ValueError
        Naming the CSV path and the video.
    """
    csv_path, video = Path(csv_path), Path(video_path)
    if _same_file(csv_path, video):
        what = "the video itself" if os.path.abspath(csv_path) == os.path.abspath(video) else f"a link to the video {video}"
        raise ValueError(f"CSV file {csv_path} is {what}; choose another name for the CSV")
    if _same_file(session_json_path(csv_path), video):
        raise ValueError(f"CSV file {csv_path} would write its session description over the video {video}; "
                         "choose another name for the CSV")
    if any(_same_file(folder, video) for folder in csv_path.parents):
        raise ValueError(f"CSV file {csv_path} would be inside the video {video}, which is a file, not a folder; "
                         "choose another name for the CSV")


def _same_file(path: Path, other: Path) -> bool:
    """Whether two paths name one file: the same path, a symbolic link or a hard link to it."""
    if path.resolve() == other.resolve():
        return True
    try:
        return os.path.samefile(path, other)
    except OSError:  # one of them does not exist (yet)
        return False


def new_session_path(folder: Path, now: datetime) -> Path:
    """``folder/session-YYYYmmdd-HHMMSS.csv``, with ``-2``, ``-3``, ... when that name is taken
    (two sessions started within one second must not share a file)."""
    stem = f"session-{now:%Y%m%d-%H%M%S}"
    path, n = folder / f"{stem}.csv", 1
    while path.exists() or session_json_path(path).exists():
        n += 1
        path = folder / f"{stem}-{n}.csv"
    return path


def _now() -> datetime:
    return datetime.now().astimezone()


class SessionWriter:
    """Writes the session CSV and its JSON description.

    Parameters
    ----------
    csv_path
        The CSV to create (an existing file is replaced); its folder must exist.
    source_description
        The source spec, e.g. ``video:lecture.mp4``.
    model_meta
        The classifier's checkpoint description (architecture, classes, metrics), if known.
    settings
        The settings of the session, recorded in the JSON.
    classes
        The order of the results' probabilities, ``Pipeline.classes``: the FER+ classes in FER+
        order, the columns' order. The pipeline puts a model's probabilities in that order, whatever
        order the model has, so they are reordered in that one place; default the FER+ classes.
    runtime
        What runs the classifier (e.g. "onnxruntime int8 on CPU"), recorded in the JSON.

    Raises
    ------
    SessionError
        When the CSV or JSON cannot be written.
    """

    def __init__(self, csv_path: str | Path, source_description: str, model_meta: ModelMeta | None,
                 settings: Settings, classes: tuple[str, ...] | None = None, runtime: str = "") -> None:
        self.csv_path = Path(csv_path)
        self.runtime = runtime
        self.json_path = session_json_path(self.csv_path)
        self.source_description = source_description
        self.model_meta = model_meta
        self.settings = settings
        classes = tuple(classes) if classes is not None else FERPLUS_CLASSES
        for names in (classes, model_meta.classes if model_meta is not None else classes):
            if sorted(names) != sorted(FERPLUS_CLASSES):
                raise ValueError(f"the session CSV needs the FER+ classes {', '.join(FERPLUS_CLASSES)}; "
                                 f"the model has {', '.join(names)}")
        if classes != FERPLUS_CLASSES:
            raise ValueError(f"the session CSV takes probabilities in FER+ order ({', '.join(FERPLUS_CLASSES)}), "
                             f"as the pipeline gives them; got {', '.join(classes)}")
        self.start = _now()
        self.end: datetime | None = None
        self.rows_written = 0
        self.steps_written = 0
        self._names: dict[int, str] = {}
        self._last_fsync = time.monotonic()
        self._can_sync = True
        try:
            self._file: io.FileIO | None = io.FileIO(self.csv_path, "w")
        except OSError as exc:
            raise self._csv_error(exc) from exc
        try:
            self._write_bytes((CSV_HEADER + "\n").encode("utf-8"))
        except SessionError:
            self._file.close()
            self._file = None
            raise
        try:
            self._write_json()
        except OSError as exc:
            self._file.close()
            self._file = None
            raise self._json_error(exc) from exc
        log.info("session CSV %s started for %s", self.csv_path, source_description)

    @property
    def closed(self) -> bool:
        return self._file is None

    def _csv_error(self, exc: OSError) -> SessionError:
        return _write_error(f"CSV file {self.csv_path}", self.csv_path.parent, exc)

    def _json_error(self, exc: OSError) -> SessionError:
        return _write_error(f"session file {self.json_path} beside {self.csv_path}", self.json_path.parent, exc)

    def _write_bytes(self, data: bytes) -> None:
        """Append ``data`` whole; on a failure (a full disk) the part written is cut off again, so
        the file keeps only whole rows."""
        assert self._file is not None
        start = self._file.tell()
        view = memoryview(data)
        try:
            while view:
                written = self._file.write(view)
                view = view[written or 0:]
        except OSError as exc:
            try:
                self._file.seek(start)
                self._file.truncate(start)
            except OSError as cut_exc:
                log.error("CSV file %s keeps part of a row: it could not be cut back (%s)", self.csv_path, cut_exc)
            raise self._csv_error(exc) from exc

    def write(self, result: FrameResult, names: Mapping[int, str] | None = None) -> int:
        """Append one row per visible person of ``result``; returns the number of rows written.

        Parameters
        ----------
        names
            Display names by person id, all of them as they stand now (a cleared name is left
            out); None keeps the last ones given. People without one get an empty ``person_name``.
        """
        if self._file is None:
            raise SessionError(f"CSV file {self.csv_path} is already closed")
        if names is not None:
            self._names = dict(names)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        timestamp = result.wall_time.isoformat(timespec="milliseconds")
        t = round(result.t_seconds, 3)
        for face in result.faces:
            x, y, w, h = face.box
            probabilities = [f"{p:.{PROBABILITY_DECIMALS}f}" for p in face.probabilities]  # in FER+ order
            writer.writerow([
                timestamp, f"{t:.3f}", result.frame_index, face.person_id,
                self._names.get(face.person_id, ""),
                x, y, w, h, *probabilities, face.top_expression,
                f"{face.top_probability:.{PROBABILITY_DECIMALS}f}", face.indicator,
            ])
        if result.faces:
            self._write_bytes(buffer.getvalue().encode("utf-8"))
            self.rows_written += len(result.faces)
        self.steps_written += 1
        if time.monotonic() - self._last_fsync >= FSYNC_INTERVAL_S:
            self.flush()
        return len(result.faces)

    def flush(self) -> None:
        """Force the rows written so far onto the disk."""
        if self._file is not None:
            self._sync(self._file)
            self._last_fsync = time.monotonic()

    def _sync(self, file: io.FileIO) -> None:
        """fsync ``file``; where the file cannot be synced at all (a file system or device without
        fsync) the rows are still written, so that is said once and syncing stops."""
        if not self._can_sync:
            return
        try:
            os.fsync(file.fileno())
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
                raise self._csv_error(exc) from exc
            self._can_sync = False
            log.warning("CSV file %s cannot be synced to disk (%s); rows are written without it", self.csv_path,
                        exc.strerror or exc)

    def close(self) -> None:
        """Flush and close the CSV, record the end time in the JSON; calling it twice is harmless.

        The JSON gets its end time even when the CSV's last flush fails; that failure is raised
        after, else a JSON that could not be written (a full disk: the rows stay in the CSV).
        """
        if self._file is None:
            return
        file, self._file = self._file, None
        error: SessionError | None = None
        try:
            self._sync(file)
        except SessionError as exc:
            error = exc
        try:
            file.close()
        except OSError as exc:  # a file system that reports a deferred write error at close
            error = error or self._csv_error(exc)
        self.end = _now()
        try:
            self._write_json()
        except OSError as exc:
            json_error = self._json_error(exc)
            log.error("at close: %s", json_error)
            error = error or json_error
        log.info("session CSV %s closed: %d rows in %d steps", self.csv_path, self.rows_written, self.steps_written)
        if error is not None:
            raise error

    def describe(self) -> dict[str, Any]:
        """The session JSON's content."""
        meta = self.model_meta
        return {
            "fermonitor_version": __version__,
            "csv": self.csv_path.name,
            "source": self.source_description,
            "model": None if meta is None else {
                "arch": meta.arch, "classes": list(meta.classes), "input_size": meta.input_size,
                "crop_margin": meta.crop_margin,  # the one used unless settings.analysis.crop_margin is set
                "metrics": meta.metrics, "runtime": self.runtime or None,
            },
            "settings": settings_to_dict(self.settings),
            "start": self.start.isoformat(timespec="seconds"),
            "end": None if self.end is None else self.end.isoformat(timespec="seconds"),
            "steps": self.steps_written,
            "rows": self.rows_written,
            "person_names": {str(k): v for k, v in sorted(self._names.items())},
            "absent_people": "not written as rows; a gap in a person's rows",
        }

    def _write_json(self) -> None:
        """Write the JSON beside the CSV through a temporary file, which a failed write (a full disk)
        removes again: the JSON is whole or as it was before."""
        tmp = self.json_path.with_name(self.json_path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.describe(), indent=2, default=str) + "\n", encoding="utf-8")
            tmp.replace(self.json_path)
        except OSError:
            if tmp.is_file():  # a folder in its way (not ours) stays
                try:
                    tmp.unlink()
                except OSError as unlink_exc:
                    log.error("temporary file %s could not be removed (%s)", tmp, unlink_exc.strerror or unlink_exc)
            raise

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.close()
        except SessionError as close_exc:
            if exc is None:
                raise
            # The error under way says what went wrong first; this one goes to the log.
            log.error("closing after %s: %s", type(exc).__name__, close_exc)
