"""Start a private Xvfb server for tests and know for sure when it accepts clients."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

START_TIMEOUT_S = 20.0
FIRST_DISPLAY = 90  # well above the displays a desktop or another CI job uses


def _free_display() -> int:
    for number in range(FIRST_DISPLAY, FIRST_DISPLAY + 200):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError(f"no free X display number from :{FIRST_DISPLAY}")


def _accepts_clients(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@contextmanager
def running_xvfb(width: int, height: int) -> Iterator[str]:
    """Run Xvfb on a free display number and yield its DISPLAY (":N") once it accepts clients
    (a socket file alone can be stale or not yet listening)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb); screen capture needs a real X server")
    number = _free_display()
    process = subprocess.Popen(
        # -noreset: by default an X server resets when its last client leaves (our readiness probe
        # is one), and a client that connects during the reset is refused.
        ["Xvfb", f":{number}", "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp", "-noreset"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    path = Path(f"/tmp/.X11-unix/X{number}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _accepts_clients(path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"Xvfb :{number} did not accept clients within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    try:
        yield f":{number}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
