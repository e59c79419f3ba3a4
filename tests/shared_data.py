"""Where the tests find the real data they share (FER2013, FER+): ``../shared/data`` beside the repository.

Computed here once; ``tests/conftest.py`` exposes it to fixtures, and test modules import it
(``from shared_data import DATA_DIR``), as they import ``xvfb``.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
