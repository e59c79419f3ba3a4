"""Command line: ``fermonitor`` starts the desktop app, ``fermonitor analyze`` runs headless."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from fermonitor import __version__
from fermonitor.core.errors import one_line
from fermonitor.logging_setup import setup_logging
from fermonitor.termination import TERMINATED_STATUS, Terminated, sigterm_raises

log = logging.getLogger(__name__)


def _seconds(text: str) -> float:
    """A finite number of seconds, 0 or more (--exit-after)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.0 <= value < 1e6:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds from 0 to 999999")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fermonitor``."""
    parser = argparse.ArgumentParser(
        prog="fermonitor",
        description="Facial-expression timelines of a class, live or from a video. "
                    "Without a command, the desktop app starts.",
    )
    parser.add_argument("--version", action="version", version=f"fermonitor {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr too")
    parser.add_argument("--source", metavar="SPEC",
                        help="app: source to start with (webcam:N, screen:N, region:X,Y,W,H, video:PATH)")
    parser.add_argument("--csv", metavar="PATH", help="app: start a session writing this CSV")
    parser.add_argument("--exit-after", metavar="SECONDS", type=_seconds,
                        help="app: stop the session and quit after this many seconds")
    parser.add_argument("--model", metavar="PATH",
                        help="app: a checkpoint to use instead of the shipped model")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    analyze = commands.add_parser("analyze", help="analyse a video file into a session CSV, headless",
                                  description="Run the analysis over a video file as fast as the machine "
                                              "allows and write the session CSV and JSON.")
    analyze.add_argument("video", metavar="VIDEO", help="a video file OpenCV can read")
    analyze.add_argument("--csv", required=True, metavar="OUT", help="the session CSV to write")
    analyze.add_argument("--rate", type=float, metavar="HZ", help="analysis steps per second of video (default: --settings, else 2)")
    analyze.add_argument("--detector", metavar="NAME", help="face detector: yunet or haar (default: --settings, else yunet)")
    analyze.add_argument("--device", metavar="D", help="auto, cpu, cuda, cuda:N or mps (default: --settings, else auto)")
    # SUPPRESS: without the option here, the one given before "analyze" stays.
    analyze.add_argument("--model", metavar="PATH", default=argparse.SUPPRESS,
                         help="a checkpoint (default: the shipped model)")
    analyze.add_argument("--settings", metavar="PATH",
                         help="a JSON settings file merged over the defaults (default: the defaults)")
    analyze.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _run_analyze(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fermonitor.core.analyze import analyze_video
    from fermonitor.core.settings import Settings, read_settings

    settings = read_settings(args.settings, missing_ok=False) if args.settings else Settings()
    # Progress in seconds of video; the total is known once the video is open.
    with tqdm(total=None, unit="s video", desc="analysing", disable=args.no_progress, file=sys.stderr) as bar:

        def progress(t_seconds: float, duration_s: float) -> None:
            if duration_s and bar.total != round(duration_s, 1):
                bar.total = round(duration_s, 1)
            bar.n = round(min(t_seconds, duration_s) if duration_s else t_seconds, 1)
            bar.refresh()

        with sigterm_raises():
            summary = analyze_video(args.video, args.csv, rate_hz=args.rate, detector=args.detector,
                                    device=args.device, model=args.model, settings=settings, progress=progress)
    print(f"{summary.rows} rows for {summary.people} people in {summary.steps} steps "
          f"({summary.video_seconds:.1f} s of video) written to {summary.csv_path}")
    if summary.ended_early:
        print(f"fermonitor: warning: video {args.video} stopped decoding at {summary.video_seconds:.1f} s of the "
              f"{summary.duration_s:.1f} s it declares (cut short or damaged?); the rows up to there are written",
              file=sys.stderr)
    return 0


def _run_app(args: argparse.Namespace) -> int:
    try:
        from fermonitor.ui import app
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name.startswith("fermonitor.ui") or exc.name.startswith("PySide6")):
            raise RuntimeError(f"the desktop app cannot start: module {exc.name} is not installed") from exc
        raise
    return int(app.run(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fermonitor`` and ``python -m fermonitor``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    log_file = setup_logging(stderr_level=logging.INFO if args.verbose else logging.WARNING)
    log.info("fermonitor %s starting (%s), log file %s", __version__, args.command or "app", log_file)

    from fermonitor.core.checkpoint import CheckpointError
    from fermonitor.core.detection import DetectorError
    from fermonitor.core.session import SessionError
    from fermonitor.core.settings import SettingsError
    from fermonitor.core.sources import SourceError

    try:
        if args.csv == "":
            raise SessionError("--csv '': the path is empty")
        if args.csv is not None and Path(args.csv).is_dir():
            raise SessionError(f"CSV path {args.csv} is a folder")
        if args.command == "analyze":
            return _run_analyze(args)
        return _run_app(args)
    except (SourceError, CheckpointError, SessionError, DetectorError, SettingsError, RuntimeError, ValueError) as exc:
        log.info("%s failed", args.command or "app", exc_info=True)
        print(f"fermonitor: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except Terminated as exc:  # the session files are closed, as after Ctrl-C
        log.info("%s %s", args.command or "app", exc)
        print(f"fermonitor: {exc}", file=sys.stderr)
        return TERMINATED_STATUS
    except KeyboardInterrupt:
        print("fermonitor: interrupted", file=sys.stderr)
        return 130
