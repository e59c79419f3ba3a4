"""Entry point of the frozen executable: the same `fermonitor` command as from source."""

from __future__ import annotations

import multiprocessing

from fermonitor.cli import main

if __name__ == "__main__":
    # A frozen program that starts a child process re-runs this file; freeze_support ends the child
    # here instead of opening a second window.
    multiprocessing.freeze_support()
    raise SystemExit(main())
