"""The original study's seed_* architectures: in training/, registered once training is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta, load_checkpoint, save_checkpoint
from fermonitor.core.models import build_model, list_models
from training.seed_models import SEED_MODELS

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", SEED_MODELS)
def test_each_seed_model_runs_on_a_tiny_cpu_batch(name: str) -> None:
    assert name in list_models()
    torch.manual_seed(0)
    model = build_model(name, num_classes=10).eval()
    with torch.inference_mode():
        logits = model(torch.randn(2, 1, 48, 48))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *(["-c", code] if code else []), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_seed_checkpoint_loads_in_training_and_the_app_does_not_carry_the_seed_models(tmp_path: Path) -> None:
    path = tmp_path / "seed.pt"
    torch.manual_seed(0)
    save_checkpoint(path, build_model("seed_resnet34"), ModelMeta("seed_resnet34", FERPLUS_CLASSES), half=False)
    assert load_checkpoint(path)[1].arch == "seed_resnet34"  # this process has imported training
    # A fresh process with the app's modules only: no seed_* model, and a seed checkpoint is refused by name.
    app_only = _python("import sys\n"
                       "import fermonitor.cli, fermonitor.core.models as m\n"
                       "from fermonitor.core.checkpoint import load_checkpoint, CheckpointError\n"
                       "print(','.join(m.list_models()))\n"
                       "try:\n    load_checkpoint(sys.argv[1])\n"
                       "except CheckpointError as exc:\n    print(exc)\n"
                       "print('training' in sys.modules)\n", str(path))
    assert app_only.returncode == 0, app_only.stderr[-3000:]
    names, refusal, training_loaded = app_only.stdout.splitlines()
    assert names == "resnet34,resnet50,vgg16,vgg19" and training_loaded == "False"
    assert "unknown model 'seed_resnet34'" in refusal
    # python -m training evaluate, in a fresh process, builds the seed model; only the missing data stops it.
    evaluated = _python("", "-m", "training", "evaluate", "--checkpoint", str(path),
                        "--data-dir", str(tmp_path / "no-data"), "--threads", "1")
    assert evaluated.returncode == 1
    assert "unknown model" not in evaluated.stderr and "no-data" in evaluated.stderr, evaluated.stderr[-3000:]
