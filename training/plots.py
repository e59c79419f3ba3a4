"""Training curves and confusion matrices as PNG files (matplotlib, Agg backend, no display)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen before pyplot loads)
import numpy as np  # noqa: E402

FIGURE_DPI = 110


def read_summary(path: str | Path) -> dict[str, list[float]]:
    """Columns of a run's per-epoch ``summary.csv`` as float lists, keyed by header name.

    Raises
    ------
    ValueError
        When the file has no header or a cell is not a number, naming the file and line.
    """
    path = Path(path)
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}:1: summary file has no header")
        columns: dict[str, list[float]] = {name: [] for name in header}
        for line_no, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(f"{path}:{line_no}: expected {len(header)} fields, found {len(row)}")
            for name, cell in zip(header, row, strict=True):
                try:
                    columns[name].append(float(cell))
                except ValueError as exc:
                    raise ValueError(f"{path}:{line_no}: {name} {cell!r} is not a number") from exc
    return columns


def plot_curves(summary_csv: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Loss (train, valid) and accuracy (train, valid) per epoch, side by side."""
    columns = read_summary(summary_csv)
    epochs = columns.get("epoch", [])
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, label in (("train_loss", "train"), ("valid_loss", "valid")):
        if key in columns:
            ax_loss.plot(epochs, columns[key], marker="o", label=label)
    for key, label in (("train_acc", "train"), ("valid_acc", "valid")):
        if key in columns:
            ax_acc.plot(epochs, [100 * v for v in columns[key]], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        if epochs:
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(title)
    return _save(fig, out_png)


def plot_confusion(confusion: Sequence[Sequence[int]] | np.ndarray, classes: Sequence[str], out_png: str | Path,
                   title: str = "") -> Path:
    """A confusion matrix (rows: true class, columns: predicted), cells shaded by row share, counts printed."""
    matrix = np.asarray(confusion, dtype=np.int64)
    if matrix.shape != (len(classes), len(classes)):
        raise ValueError(f"confusion matrix of shape {matrix.shape} does not fit {len(classes)} classes")
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if title:
        ax.set_title(title)
    return _save(fig, out_png)


def plot_grid(rows: Sequence[tuple[str, float | None, float | None, float | None]], out_png: str | Path,
              title: str = "") -> Path:
    """The comparison grid in one chart: per run (name, official test %, the study's footing %, the
    study's own figure %), a bar for each of ours and a mark at the study's figure; None leaves one out."""
    names = [row[0] for row in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(rows) + 2.4))
    for offset, column, label, colour in ((-0.2, 1, "ours, official FER+ test (majority)", "tab:blue"),
                                          (0.2, 2, "ours, the study's footing (PublicTest, argmax of 10)", "tab:orange")):
        shown = [(k, row[column]) for k, row in zip(y, rows, strict=True) if row[column] is not None]
        if shown:
            ax.barh([k + offset for k, _ in shown], [v for _, v in shown], height=0.38, color=colour, label=label)
    study = [(k, row[3]) for k, row in zip(y, rows, strict=True) if row[3] is not None]
    if study:
        ax.scatter([v for _, v in study], [k + 0.2 for k, _ in study], marker="D", color="black", zorder=3,
                   label="the study's figure (its own split)")
    ax.set_yticks(y, names)
    ax.invert_yaxis()  # the grid's order, top down
    ax.set(xlabel="accuracy (%)", xlim=(0, 100))
    ax.grid(axis="x", alpha=0.3)
    # Below the axis label: about half an inch down, whatever the chart's height.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6 / (0.42 * len(rows) + 0.9)), fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, out_png)


def _save(fig, out_png: str | Path) -> Path:
    """Lay out, write and close a figure; returns the PNG's path."""
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=FIGURE_DPI)
    plt.close(fig)
    return out_png
