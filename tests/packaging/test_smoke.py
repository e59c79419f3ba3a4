"""The built executable starts offscreen on a video, logs its startup line and writes the CSV.

Slow and deselected by default: build first (`make package`), then run
`.venv/bin/pytest -m slow tests/packaging` (or `make smoke`, which builds and runs the script).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _load_smoke_test():
    spec = importlib.util.spec_from_file_location("fermonitor_smoke_test", REPO / "packaging" / "smoke_test.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_built_executable_runs_a_session_on_a_video(tmp_path: Path) -> None:
    smoke = _load_smoke_test()
    executable = smoke.default_executable()
    if not executable.is_file():
        pytest.fail(f"no built executable at {executable}: run `make package` before `pytest -m slow`")
    result = smoke.run_smoke_test(executable, seconds=8.0, timeout_s=240.0, folder=tmp_path)
    assert not result.failures, "\n".join(result.failures) + f"\n(output in {tmp_path}/all-output.txt)"
    assert result.startup_s is not None and result.first_frame_s is not None
    if smoke.FER2013.is_file():
        assert result.rows > 0 and result.people > 0
