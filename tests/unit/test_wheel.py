"""The release: `python -m build` makes a wheel that carries the models and icons and no top-level
`training`, and that wheel, installed into a fresh virtual environment, analyses a video."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fermonitor.core.detection import create_detector
from fermonitor.core.resources import YUNET_FILE_NAME

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # The sdist, then the wheel from it (as a release is built: no stale files of earlier builds);
    # no isolation: the build uses this environment's setuptools instead of downloading one.
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, text=True)
    (built,) = out.glob("fermonitor-*.whl")
    return built


def test_the_wheel_carries_the_models_and_icons_and_not_the_training_code(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for inside in ("fermonitor/resources/models/fermonitor_vgg19.onnx", "fermonitor/resources/models/fermonitor_vgg19.pt",
                   f"fermonitor/resources/models/{YUNET_FILE_NAME}", "fermonitor/resources/models/LICENSE-yunet.txt",
                   "fermonitor/resources/models/README.md", "fermonitor/resources/icons/fermonitor.png"):
        assert inside in names, f"{inside} is not in {wheel.name}"
    assert not [n for n in names if n.startswith(("training/", "tests/", "benchmarks/"))]


def test_the_installed_wheel_analyses_a_video_away_from_the_source(
        wheel: Path, tmp_path: Path, make_face_video, fer_faces: tuple[np.ndarray, np.ndarray]) -> None:
    detector = create_detector("yunet")
    face = next(f for f in fer_faces[0]
                if len(detector.detect(np.pad(np.kron(f, np.ones((2, 2), np.uint8)), 40, constant_values=120)[:, :, None]
                                       .repeat(3, axis=2))) == 1)
    video = make_face_video(face[None], seconds=2.0, fps=10)
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=False)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # The wheel alone, without its dependencies (torch, OpenCV, Qt: too big to install per test);
    # those come from this environment's site-packages, after the fresh one's, as a plain path.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], check=True, capture_output=True, text=True)
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import fermonitor; print(fermonitor.__file__)"], cwd=tmp_path,
                           env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(env_dir), f"fermonitor imported from {where}, not the installed wheel"
    assert subprocess.run([str(python), "-c", "import training"], cwd=tmp_path, env=env,
                          capture_output=True).returncode != 0

    csv_path = tmp_path / "out.csv"
    script = env_dir / ("Scripts/fermonitor.exe" if os.name == "nt" else "bin/fermonitor")
    run = subprocess.run([str(script), "analyze", str(video), "--csv", str(csv_path), "--no-progress"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {row["person_id"] for row in rows} == {"1"}
