"""The one-line form in which errors reach users (a dialog, a CLI's stderr, a wrapped error)."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type name when the message is empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
