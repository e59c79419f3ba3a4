"""The one place that sets up logging: a rotating file in the user log folder, plus stderr."""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

import platformdirs

LOG_FILE_NAME = "fermonitor.log"
LOG_DIR_ENV = "FERMONITOR_LOG_DIR"  # overrides the user log folder (tests, portable installs)
MAX_LOG_BYTES = 2 * 1024 * 1024  # per file, before it rotates
LOG_BACKUPS = 3
FILE_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"
STDERR_FORMAT = "fermonitor: %(levelname)s: %(message)s"
_HANDLER_MARK = "_fermonitor_handler"


def log_dir() -> Path:
    """Where the log file goes: ``$FERMONITOR_LOG_DIR`` or the user log folder."""
    override = os.environ.get(LOG_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_log_dir("fermonitor"))


def setup_logging(stderr_level: int = logging.WARNING, file_level: int = logging.INFO) -> Path | None:
    """Route the ``fermonitor`` loggers to a rotating file and stderr; safe to call again.

    Returns
    -------
    Path or None
        The log file, or ``None`` when its folder cannot be created (then stderr only, with a
        warning saying why).
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(min(stderr_level, file_level))
    to_stderr = logging.StreamHandler()
    to_stderr.setLevel(stderr_level)
    to_stderr.setFormatter(logging.Formatter(STDERR_FORMAT))
    setattr(to_stderr, _HANDLER_MARK, True)
    root.addHandler(to_stderr)
    path = log_dir() / LOG_FILE_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS,
                                                       encoding="utf-8")
    except OSError as exc:
        logging.getLogger(__name__).warning("log file %s cannot be written (%s); logging to stderr only", path, exc)
        return None
    to_file.setLevel(file_level)
    to_file.setFormatter(logging.Formatter(FILE_FORMAT))
    setattr(to_file, _HANDLER_MARK, True)
    root.addHandler(to_file)
    return path
