"""README.md quotes the shipped model's figures as its model card states them, and no older ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL_CARD = REPO / "fermonitor" / "resources" / "models" / "README.md"
MODEL_FILE = MODEL_CARD.parent / "fermonitor_vgg19.pt"
# A percentage with decimals, as accuracy figures are written ("87.70%"); whole ones ("40%") are settings.
DECIMAL_PERCENT = re.compile(r"(?<![\d.])(\d{1,3}\.\d+)%")


def card_metric(name: str) -> str:
    """The value of row ``name`` of the model card's metrics table ("| test accuracy | **87.70%** |")
    as written, without the percent sign."""
    rows = re.findall(rf"^\|\s*{re.escape(name)}\s*\|\s*\**(\d+\.\d+)%\**\s*\|", MODEL_CARD.read_text(), re.MULTILINE)
    assert len(rows) == 1, f"{MODEL_CARD} should have one '| {name} | NN.NN% |' row in its metrics table, found {rows}"
    return rows[0]


def test_the_model_card_headline_is_its_metrics_table_and_the_shipped_file() -> None:
    accuracy, macro_f1 = card_metric("test accuracy"), card_metric("test macro-F1")
    status = re.search(r"\*\*Status: (\d+\.\d+)% on the official FER\+ test \(macro-F1 (\d+\.\d+)%\)", MODEL_CARD.read_text())
    assert status is not None and status.groups() == (accuracy, macro_f1)
    if not MODEL_FILE.is_file():
        pytest.skip(f"{MODEL_FILE} is not here to compare against")
    from fermonitor.core.checkpoint import load_checkpoint

    metrics = load_checkpoint(MODEL_FILE)[1].metrics
    assert (f"{100 * metrics['test_accuracy']:.2f}", f"{100 * metrics['test_macro_f1']:.2f}") == (accuracy, macro_f1)


def test_readme_quotes_the_model_cards_test_figures_and_no_other() -> None:
    accuracy, macro_f1 = card_metric("test accuracy"), card_metric("test macro-F1")
    quoted = [(line_no, figure) for line_no, line in enumerate((REPO / "README.md").read_text().splitlines(), start=1)
              for figure in DECIMAL_PERCENT.findall(line)]
    assert (accuracy in {figure for _, figure in quoted}), \
        f"README.md should quote the model card's test accuracy {accuracy}%; it quotes {quoted}"
    stale = [f"README.md:{line_no}: {figure}%" for line_no, figure in quoted if figure not in (accuracy, macro_f1)]
    assert not stale, (f"README.md quotes figures the model card does not give (test accuracy {accuracy}%, "
                       f"macro-F1 {macro_f1}%): " + ", ".join(stale))
