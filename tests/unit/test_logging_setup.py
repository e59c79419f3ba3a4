"""Logging set-up: the log file in its folder, set up again without doubling, and a folder that
cannot be made."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from fermonitor.logging_setup import LOG_DIR_ENV, LOG_FILE_NAME, setup_logging


@pytest.fixture
def restored_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def test_the_log_file_is_written_and_a_second_setup_does_not_double_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restored_root_logger: None) -> None:
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    assert setup_logging() == tmp_path / "logs" / LOG_FILE_NAME
    assert setup_logging() == tmp_path / "logs" / LOG_FILE_NAME
    logging.getLogger("fermonitor.test").info("one line")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert (tmp_path / "logs" / LOG_FILE_NAME).read_text(encoding="utf-8").count("one line") == 1


def test_a_log_folder_that_cannot_be_made_leaves_stderr_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restored_root_logger: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv(LOG_DIR_ENV, str(blocker / "logs"))
    assert setup_logging() is None
    err = capsys.readouterr().err
    assert f"log file {blocker / 'logs' / LOG_FILE_NAME} cannot be written" in err and "stderr only" in err
