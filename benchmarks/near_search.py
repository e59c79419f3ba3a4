"""Searching near tracked faces: how many faces YuNet's mosaic finds, and how fast, per face size.

On PublicTest galleries (FER2013Valid faces, 25 to a 1280x720 gallery, 60-100 px, rolled up to 20
degrees, as benchmarks/gallery_eval.py builds them) the whole-frame search runs once; then each
gallery is drawn again with every face moved by up to 5 px either way (a person between two steps)
and searched near the boxes found, with the faces resized to each candidate ``near_face_px``. Prints
the faces found again (of those the whole-frame search found), the boxes on no face, and the
milliseconds per 25-face gallery, side by side in one run. The choice is made here, on validation
faces; the app's default is fermonitor.core.detection.NEAR_FACE_PX.

    python benchmarks/near_search.py [--sizes 140,112,96,80,64] [--faces 0] [--write]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import ferplus_splits, machine_description, make_gallery, match_boxes, write_section
from gallery_eval import GALLERY_FACES, MIN_INSIDE, MIN_IOU, gallery_layout

from fermonitor.core.detection import NEAR_FACE_PX, YuNetDetector
from fermonitor.core.settings import Settings

MAX_MOVE_PX = 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="140,112,96,80,64", help="comma list of near_face_px to compare")
    parser.add_argument("--faces", type=int, default=0, help="PublicTest faces to use (0: all 3,191)")
    parser.add_argument("--write", action="store_true", help="also write the table to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size]

    faces = ferplus_splits()["valid"].images
    if args.faces:
        faces = faces[: args.faces]
    rng = np.random.default_rng(0)
    analysis = Settings().analysis
    whole = YuNetDetector(scale=analysis.detector_scale, score_threshold=analysis.detector_score)
    pairs = []  # (the gallery, the same faces moved, the boxes the whole-frame search found)
    for i in range(0, len(faces), GALLERY_FACES):
        chunk = faces[i : i + GALLERY_FACES]
        sides, rolls = gallery_layout(len(chunk), rng)
        moves = [tuple(int(v) for v in rng.integers(-MAX_MOVE_PX, MAX_MOVE_PX + 1, size=2)) for _ in chunk]
        before = make_gallery(chunk, sides=sides, rolls=rolls)
        after = make_gallery(chunk, sides=sides, rolls=rolls, offsets=moves)
        found = whole.detect(before.image)
        matched = match_boxes(before.boxes, [d.box for d in found], MIN_IOU, MIN_INSIDE)
        pairs.append((after, [found[m].box for m in matched if m is not None]))
    tracked = sum(len(boxes) for _, boxes in pairs)

    lines = [f"Machine: {machine_description()}", "",
             f"{len(faces)} PublicTest faces in {len(pairs)} galleries; the whole-frame search found {tracked}; "
             f"then each face moved up to {MAX_MOVE_PX} px and was searched near its box:", "",
             "| near_face_px | found again | boxes on no face | ms per gallery |", "| ---: | ---: | ---: | ---: |"]
    print("\n".join(lines), flush=True)
    for size in sizes:
        detector = YuNetDetector(scale=analysis.detector_scale, score_threshold=analysis.detector_score,
                                 near_face_px=size)
        detector.detect_near(pairs[0][0].image, pairs[0][1])  # warm-up
        again = false_boxes = 0
        seconds = 0.0
        for gallery, boxes in pairs:
            start = time.perf_counter()
            found = detector.detect_near(gallery.image, boxes)
            seconds += time.perf_counter() - start
            matched = match_boxes(gallery.boxes, [d.box for d in found], MIN_IOU, MIN_INSIDE)
            again += sum(m is not None for m in matched)
            false_boxes += len(found) - sum(m is not None for m in matched)
        mark = " (default)" if size == NEAR_FACE_PX else ""
        row = f"| {size}{mark} | {again} of {tracked} | {false_boxes} | {1000 * seconds / len(pairs):.1f} |"
        lines.append(row)
        print(row, flush=True)
    if args.write:
        write_section("near_search", "`python benchmarks/near_search.py`\n\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
