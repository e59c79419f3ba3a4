"""Committed files name no place on one machine: no absolute path into a machine's work, root or
temporary folders or a user's home (POSIX or Windows)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Files that are not text, by their ending; any other file holding a NUL byte is skipped too.
BINARY_SUFFIXES = {".pt", ".pth", ".onnx", ".png", ".jpg", ".jpeg", ".icns", ".ico", ".gz", ".xz", ".zip",
                   ".mp4", ".avi", ".npz", ".npy", ".whl"}
# tests/ makes and names its own temporary paths.
SKIPPED_FOLDERS = ("tests/",)
MACHINE_FOLDERS = ("work", "root", "tmp")  # /NAME/...: a machine's own folders
USER_FOLDERS = ("home", "Users")  # /NAME/<user>/...: a user's home


def posix(*parts: str) -> str:
    """An absolute POSIX folder path made of ``parts`` (the examples below are built, not written out)."""
    return "/" + "/".join(parts) + "/"


# An absolute path into a user's or a machine's folders, not preceded by a word character, a dot or a
# tilde (so https://host/tmp/ and ~/tmp/ are not taken for one).
MACHINE_PATH = re.compile(
    r"(?<![\w.~-])(?:" + "|".join([*(re.escape(posix(name)) for name in MACHINE_FOLDERS),
                                    *(re.escape("/" + name + "/") + r"[^/\s]+/" for name in USER_FOLDERS)]) + ")"
    r"|\b[A-Za-z]:\\{1,2}Users\\{1,2}", re.IGNORECASE)
# Paths that are the same on every machine: the X server's socket folder.
SYSTEM_PATHS = (posix("tmp", ".X11-unix"),)


def committed_text_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the committed files cannot be listed")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    files = []
    for name in names.decode().split("\0"):
        path = REPO / name
        if not name or name.startswith(SKIPPED_FOLDERS) or path.suffix.lower() in BINARY_SUFFIXES:
            continue
        if path.is_file():  # a file staged for removal is listed but gone
            files.append(path)
    return files


def machine_paths(text: str) -> list[tuple[int, str]]:
    """(line number, path found) of every machine path in ``text``."""
    found = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        for allowed in SYSTEM_PATHS:
            line = line.replace(allowed, "")
        found += [(line_no, match.group()) for match in MACHINE_PATH.finditer(line)]
    return found


WINDOWS_HOME = "C:" + "\\\\" + "Users" + "\\\\"  # as it stands in JSON text


@pytest.mark.parametrize(("text", "expected"), [
    (f'  "data_dir": "{posix("work", "shared")}data",', [posix("work")]),
    (f"--output-dir {posix('root', 'fermonitor-runs')}vgg19-ship", [posix("root")]),
    (f"cd {posix('home', 'alice')}fermonitor && cat {posix('tmp')}x.log", [posix("home", "alice"), posix("tmp")]),
    (f'"{WINDOWS_HOME}alice" and {posix("Users", "bob")}runs', [WINDOWS_HOME, posix("Users", "bob")]),
    ("--output-dir runs/vgg19-ship; https://example.org/tmp/x; ~/tmp/y; data/home/z", []),
    (f'Path(f"{posix("tmp", ".X11-unix")}X{{DISPLAY[1:]}}")', []),
])
def test_machine_paths_are_recognised(text: str, expected: list[str]) -> None:
    assert [path for _, path in machine_paths(text)] == expected


def test_committed_files_hold_no_absolute_machine_paths() -> None:
    files = committed_text_files()
    assert any(path.name == "args.json" for path in files), "the scan should see training/results/*/args.json"
    offending = []
    for path in files:
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        for line_no, found in machine_paths(data.decode("utf-8", errors="replace")):
            offending.append(f"{path.relative_to(REPO)}:{line_no}: {found}")
    assert not offending, "absolute machine paths in committed files:\n" + "\n".join(offending)
