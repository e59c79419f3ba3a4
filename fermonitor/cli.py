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
    analyze = commands.add_parser("analyze", help="analyse video files into session CSVs, headless",
                                  description="Run the analysis over video files as fast as the machine "
                                              "allows and write a session CSV and JSON for each. With "
                                              "several videos, a bad one is reported and skipped; the exit "
                                              "status is the number that failed.")
    analyze.add_argument("video", metavar="VIDEO", nargs="+",
                         help="video files OpenCV can read, or folders of them")
    analyze.add_argument("--csv", metavar="OUT", help="the session CSV to write (one video)")
    analyze.add_argument("--out", metavar="DIR", type=Path,
                         help="write VIDEO-NAME.csv for each video into this folder (created when missing)")
    analyze.add_argument("--jobs", type=int, default=1, metavar="N",
                         help="videos analysed at once, each in its own process (default 1)")
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


VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"})


def _run_analyze(args: argparse.Namespace) -> int:
    from fermonitor.core.settings import Settings, read_settings

    settings = read_settings(args.settings, missing_ok=False) if args.settings else Settings()
    videos = _videos(args.video)
    if args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs} must be at least 1")
    if args.out is None:
        if args.csv is None:
            raise ValueError("analyze needs --csv OUT (one video) or --out DIR")
        if len(videos) > 1:
            raise ValueError(f"--csv names one CSV but {len(videos)} videos were given: use --out DIR")
        return _analyze_one(args, settings, videos[0], Path(args.csv))
    if args.csv is not None:
        raise ValueError("give --csv (one video) or --out DIR, not both")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder")
    jobs = [(video, args.out / f"{video.stem}.csv") for video in videos]
    by_csv: dict[Path, list[Path]] = {}
    for video, csv_path in jobs:
        by_csv.setdefault(csv_path, []).append(video)
    for csv_path, clash in by_csv.items():
        if len(clash) > 1:
            raise ValueError(f"videos {', '.join(map(str, clash))} would all write {csv_path}: rename one or "
                             f"analyse them into different --out folders")
    args.out.mkdir(parents=True, exist_ok=True)
    return _analyze_many(args, settings, jobs)


def _videos(entries: Sequence[str]) -> list[Path]:
    """The video files named, folders expanded to the videos in them (by suffix, sorted)."""
    videos: list[Path] = []
    for entry in map(Path, entries):
        if entry.is_dir():
            found = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise ValueError(f"folder {entry} holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
            videos.extend(found)
        else:
            videos.append(entry)
    return videos


def _analyze_one(args: argparse.Namespace, settings: object, video: Path, csv_path: Path) -> int:
    from tqdm import tqdm

    from fermonitor.core.analyze import analyze_video

    # Progress in seconds of video; the total is known once the video is open.
    with tqdm(total=None, unit="s video", desc="analysing", disable=args.no_progress, file=sys.stderr) as bar:

        def progress(t_seconds: float, duration_s: float) -> None:
            if duration_s and bar.total != round(duration_s, 1):
                bar.total = round(duration_s, 1)
            bar.n = round(min(t_seconds, duration_s) if duration_s else t_seconds, 1)
            bar.refresh()

        with sigterm_raises():
            summary = analyze_video(video, csv_path, rate_hz=args.rate, detector=args.detector,
                                    device=args.device, model=args.model, settings=settings, progress=progress)
    print(f"{summary.rows} rows for {summary.people} people in {summary.steps} steps "
          f"({summary.video_seconds:.1f} s of video) written to {summary.csv_path}")
    if summary.ended_early:
        print(f"fermonitor: warning: {_ended_early(video, summary)}", file=sys.stderr)
    return 0


def _ended_early(video: Path, summary: object) -> str:
    return (f"video {video} stopped decoding at {summary.video_seconds:.1f} s of the {summary.duration_s:.1f} s "  # type: ignore[attr-defined]
            f"it declares (cut short or damaged?); the rows up to there are written")


def _analyze_file(video: Path, csv_path: Path, options: dict) -> tuple[str, str]:
    """One video of a many-file run, in a worker process or this one: ("ok" or "failed", one line)."""
    from fermonitor.core.analyze import analyze_video

    try:
        summary = analyze_video(video, csv_path, **options)
    except (ValueError, OSError, RuntimeError) as exc:  # SourceError, CheckpointError, SessionError are ValueErrors
        return "failed", f"{video}: {one_line(exc)}"
    speed = summary.video_seconds / summary.wall_seconds if summary.wall_seconds else 0.0
    line = (f"{video}: {summary.rows} rows for {summary.people} people in {summary.video_seconds:.1f} s of video, "
            f"{speed:.1f}x real time, written to {csv_path}")
    return "ok", line + (f" (warning: {_ended_early(video, summary)})" if summary.ended_early else "")


def _analyze_many(args: argparse.Namespace, settings: object, jobs: list[tuple[Path, Path]]) -> int:
    """Analyse every video, ``args.jobs`` at a time; one line per file as it ends; the number failed."""
    options = dict(rate_hz=args.rate, detector=args.detector, device=args.device, model=args.model,
                   settings=settings)
    failed = 0

    def report(outcome: tuple[str, str]) -> None:
        nonlocal failed
        status, line = outcome
        failed += status != "ok"
        print(f"{'ok' if status == 'ok' else 'FAILED'} {line}", file=sys.stdout if status == "ok" else sys.stderr,
              flush=True)

    with sigterm_raises():
        if args.jobs == 1 or len(jobs) == 1:
            for video, csv_path in jobs:
                report(_analyze_file(video, csv_path, options))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # spawn: each worker starts clean, without this process's threads or loaded libraries
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(args.jobs, len(jobs)), mp_context=context) as pool:
                futures = [pool.submit(_analyze_file, video, csv_path, options) for video, csv_path in jobs]
                try:
                    for future in as_completed(futures):
                        report(future.result())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    print(f"{len(jobs) - failed} of {len(jobs)} videos analysed" + (f", {failed} failed" if failed else ""))
    return min(failed, MAX_FAILED_STATUS)


MAX_FAILED_STATUS = 125  # exit statuses above are the shell's (126-128) and signals'


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
