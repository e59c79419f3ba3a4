"""Where `fermonitor analyze` spends its time: a per-stage table over a 720p H.264 lecture recording.

Usage (from the repository root; needs PyAV, in the dev extras, to write the H.264 file):

    python benchmarks/analyze_profile.py [--minutes 10] [--rate 2] [--write]

The recording is written once (cached outside the repository): 1280x720, 24 fps, H.264 with a
keyframe every 2.4 s, 1-4 real FER+ faces of 130-200 px that drift a little, and a cut to another
group of people every 45 s. The script then runs ``analyze_video`` with the default settings, and
again searching the whole frame at every step, and prints for each, per stage, the seconds spent and the milliseconds per analysis step: decode and convert
(in the decoding thread, beside the rest), detection, tracking, crops, classification (batched
across steps) and the CSV; and the run's speed as a multiple of real time.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from common import ferplus_splits, machine_description, write_section

from fermonitor.core.analyze import analyze_video
from fermonitor.core.detection import create_detector
from fermonitor.core.settings import Settings

SIZE = (1280, 720)
FPS = 24
GOP = 58  # a keyframe every 2.4 s, as in the recordings FINDINGS.md measured
CUT_S = 45
CACHE = Path.home() / ".cache" / "fermonitor" / "bench"


def detectable_faces(count: int) -> np.ndarray:
    """Real FER+ test faces the default detector finds alone at 160 px."""
    detector = create_detector("yunet")
    chosen = []
    for face in ferplus_splits()["test"].images:
        tile = cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC)
        canvas = cv2.cvtColor(cv2.copyMakeBorder(tile, 80, 80, 80, 80, cv2.BORDER_CONSTANT, value=110), cv2.COLOR_GRAY2BGR)
        if len(detector.detect(canvas)) == 1:
            chosen.append(face)
        if len(chosen) == count:
            return np.stack(chosen)
    raise SystemExit(f"fewer than {count} detectable faces found")


def write_lecture(path: Path, minutes: float) -> None:
    import av

    rng = np.random.default_rng(7)
    faces = detectable_faces(40)
    frames = int(minutes * 60 * FPS)
    tmp = path.with_suffix(".partial.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.options = {"g": str(GOP), "preset": "veryfast", "crf": "23"}
        scene: list[tuple[np.ndarray, int, int]] = []
        for i in range(frames):
            if i % (CUT_S * FPS) == 0:  # a cut: another group, elsewhere in the picture
                group = rng.choice(len(faces), size=int(rng.integers(1, 5)), replace=False)
                background = int(rng.integers(60, 170))
                scene = []
                for k, index in enumerate(group):
                    side = int(rng.integers(130, 200))
                    x = 40 + k * 300 + int(rng.integers(0, 60))
                    y = int(rng.integers(60, SIZE[1] - side - 60))
                    scene.append((cv2.resize(faces[index], (side, side), interpolation=cv2.INTER_CUBIC), x, y))
            image = np.full((SIZE[1], SIZE[0]), background, np.uint8)
            for k, (tile, x, y) in enumerate(scene):
                dx, dy = int(6 * np.sin(i / 30 + k)), int(4 * np.cos(i / 41 + k))
                image[y + dy:y + dy + len(tile), x + dx:x + dx + len(tile)] = tile
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the recording (default 10)")
    parser.add_argument("--rate", type=float, default=2.0, help="analysis steps per second of video")
    parser.add_argument("--write", action="store_true", help="also write the table to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    video = CACHE / f"lecture-{args.minutes:g}min-720p-h264.mp4"
    if not video.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"writing {video} ...", flush=True)
        write_lecture(video, args.minutes)
    machine = machine_description()
    print(machine, flush=True)
    runs = {"default": None, "the whole frame searched at every step (full_detection_every 1)": 1}
    tables, speeds = [], {}
    for name, every in runs.items():
        settings = Settings()
        if every is not None:
            settings = dataclasses.replace(settings, analysis=dataclasses.replace(settings.analysis,
                                                                                  full_detection_every=every))
        with tempfile.TemporaryDirectory(prefix="fermonitor-profile-") as tmp:
            started = time.perf_counter()
            summary = analyze_video(video, Path(tmp) / "profile.csv", rate_hz=args.rate, settings=settings)
            wall = time.perf_counter() - started
        steps = max(summary.steps, 1)
        lines = [f"{name}:", "", "| stage | seconds | ms per step |", "| --- | ---: | ---: |"]
        for stage, seconds in summary.stage_seconds.items():
            lines.append(f"| {stage} | {seconds:.1f} | {1000 * seconds / steps:.1f} |")
        lines.append(f"| **whole run (wall clock)** | {wall:.1f} | {1000 * wall / steps:.1f} |")
        speeds[name] = summary.video_seconds / wall if wall else 0.0
        lines += ["", f"{summary.video_seconds:.0f} s of video, {summary.steps} steps, {summary.rows} rows, "
                      f"{summary.people} people, in {wall:.1f} s: **{speeds[name]:.1f}x real time**", ""]
        tables.append("\n".join(lines))
        print(tables[-1], flush=True)
    text = (f"1280x720 H.264 at {args.rate:g} Hz. Decode and convert run in their own thread, beside the other "
            f"stages, so the stages add up to more than the wall clock. The default searches the whole frame "
            f"every 4th step and only near the people tracked in between.")
    print(text)
    if args.write:
        write_section("analyze_profile", f"Machine: {machine}\n\n`python benchmarks/analyze_profile.py --minutes "
                                         f"{args.minutes:g} --rate {args.rate:g}`\n\n" + "\n".join(tables) + f"\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
