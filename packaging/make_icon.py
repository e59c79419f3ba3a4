"""Draw the fermonitor icon with OpenCV and write it as PNG, Windows .ico and macOS .icns.

Run from the repository root: ``python packaging/make_icon.py``. The outputs are committed under
fermonitor/resources/icons/, so a build needs neither this script nor Pillow; rerun it only to change the
drawing. ICO and ICNS both accept PNG-compressed entries, which is what is written here.
"""

from __future__ import annotations

import argparse
import logging
import struct
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

MASTER_SIDE_PX = 1024  # drawn once at this size, then shrunk with area averaging
ICO_SIDES_PX = (16, 32, 48, 64, 128, 256)
# ICNS entry types holding PNG data, by side in pixels.
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09", 1024: b"ic10"}
BACKGROUND_BGR = (160, 96, 32)  # deep blue
FACE_BGR = (80, 200, 250)  # warm yellow
INK_BGR = (50, 40, 30)
BAR_BGR = (120, 220, 120)  # green timeline bars


def draw_icon(side: int = MASTER_SIDE_PX) -> np.ndarray:
    """A rounded blue tile with a smiling face above three timeline bars, BGRA uint8."""
    s = side / 1024.0
    image = np.zeros((side, side, 4), np.uint8)
    tile = np.zeros((side, side), np.uint8)
    radius, inset = int(180 * s), int(40 * s)
    cv2.rectangle(tile, (inset + radius, inset), (side - inset - radius, side - inset), 255, -1)
    cv2.rectangle(tile, (inset, inset + radius), (side - inset, side - inset - radius), 255, -1)
    for cx in (inset + radius, side - inset - radius):
        for cy in (inset + radius, side - inset - radius):
            cv2.circle(tile, (cx, cy), radius, 255, -1, cv2.LINE_AA)
    image[..., :3] = BACKGROUND_BGR
    image[..., 3] = tile

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(x * s), int(y * s)

    cv2.circle(image, pt(512, 420), int(260 * s), (*FACE_BGR, 255), -1, cv2.LINE_AA)
    for eye_x in (420, 604):
        cv2.circle(image, pt(eye_x, 360), int(34 * s), (*INK_BGR, 255), -1, cv2.LINE_AA)
    cv2.ellipse(image, pt(512, 450), (int(150 * s), int(110 * s)), 0, 20, 160, (*INK_BGR, 255),
                max(1, int(34 * s)), cv2.LINE_AA)
    for i, height in enumerate((90, 150, 60, 120, 180)):
        x0 = 232 + i * 120
        cv2.rectangle(image, pt(x0, 930 - height), pt(x0 + 80, 930), (*BAR_BGR, 255), -1, cv2.LINE_AA)
    return image


def resized_png(master: np.ndarray, side: int) -> bytes:
    small = master if side == master.shape[0] else cv2.resize(master, (side, side), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png", small)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {side}px PNG")
    return encoded.tobytes()


def ico_bytes(master: np.ndarray) -> bytes:
    """A Windows .ico with one PNG entry per size (a side of 256 is written as 0, per the format)."""
    pngs = [resized_png(master, side) for side in ICO_SIDES_PX]
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = 6 + 16 * len(pngs)
    entries = b""
    for side, png in zip(ICO_SIDES_PX, pngs, strict=True):
        entries += struct.pack("<BBBBHHII", side % 256, side % 256, 0, 0, 1, 32, len(png), offset)
        offset += len(png)
    return header + entries + b"".join(pngs)


def icns_bytes(master: np.ndarray) -> bytes:
    """A macOS .icns: big-endian type and length per entry, each holding a PNG."""
    body = b""
    for side, kind in ICNS_TYPES.items():
        png = resized_png(master, side)
        body += kind + struct.pack(">I", 8 + len(png)) + png
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("fermonitor/resources/icons"), help="where the icons go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    master = draw_icon()
    outputs = {
        "fermonitor.png": resized_png(master, 256),
        "fermonitor.ico": ico_bytes(master),
        "fermonitor.icns": icns_bytes(master),
    }
    for name, data in outputs.items():
        (args.out_dir / name).write_bytes(data)
        log.info("wrote %s (%d bytes)", args.out_dir / name, len(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
