"""Constants and helpers shared by the training tests."""

from __future__ import annotations

import pytest
from shared_data import DATA_DIR

# Rows kept from the start of each Usage block of fer2013.csv / fer2013new.csv.
ROWS_PER_USAGE = {"Training": 160, "PublicTest": 64, "PrivateTest": 64}
FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}


def need_data() -> None:
    if not (DATA_DIR / "fer2013.csv.gz").is_file() or not (DATA_DIR / "ferplus").is_dir():
        pytest.skip(f"real FER+ data not found in {DATA_DIR} (fer2013.csv.gz, fer2013new.csv, ferplus/)")
