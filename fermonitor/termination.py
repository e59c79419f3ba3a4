"""SIGTERM (a logout, a service stop) ends a run the way Ctrl-C does: the session files close on the way out."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

TERMINATED_STATUS = 128 + signal.SIGTERM  # the shell's status for a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. A KeyboardInterrupt, so it takes Ctrl-C's path through every ``with`` and
    ``finally`` and no ``except Exception`` catches it."""


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler: raises :class:`Terminated` in the main thread, once; a second SIGTERM
    is ignored so that it cannot cut the closing of the session files short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated("terminated by SIGTERM")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (which must be the
    caller's); the previous handler is restored after."""
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
