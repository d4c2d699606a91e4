#!/usr/bin/env python3
"""Golden fixtures for dfl-image: OpenCV/numpy outputs of every raster algorithm DFL uses.

How to rerun (by hand, not in CI):

    /work/venv-image/bin/python tools/reference/image_reference.py

The venv needs numpy, opencv-python-headless (5.0.0 was used) and pillow (for
reduce_colors), e.g. `python3 -m venv /work/venv-image && /work/venv-image/bin/pip install
numpy opencv-python-headless pillow`. `--dfl-aligned DIR` points at the real DFL aligned
faces used as inputs (default: /work/shared/fixtures/dfl-aligned, from the MIT-licensed
face-api demo photo `sample5.jpg`).

Writes small files into crates/dfl-image/tests/fixtures/: `*.f32` = 16-byte header
(b"F32I", u32 LE width, height, channels) followed by interleaved little-endian float32
samples; `golden.json` = scalar expectations (statistics for the randomised transfers,
centres, PSNR thresholds). The colour-transfer functions below transcribe DFL's
`core/imagelib/color_transfer.py` (upstream commit 46fc2397) as specified in
shared/design/dfl-merge.md section 8.
"""

import argparse
import json
import os
import struct
import sys

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "dfl-image", "tests", "fixtures")
GOLDEN = {}


def save(name, arr):
    """Writes an HxW or HxWxC array as a .f32 fixture."""
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    with open(os.path.join(OUT, name + ".f32"), "wb") as f:
        f.write(b"F32I" + struct.pack("<III", w, h, c))
        f.write(np.ascontiguousarray(a).astype("<f4").tobytes())


def inputs(aligned_dir):
    rng = np.random.default_rng(20240501)
    noise = rng.random((18, 24, 3)).astype(np.float32)
    save("in_noise", noise)
    faces = []
    for name, cast in (("sample5_0.jpg", (1.0, 1.0, 1.0)), ("sample5_4.jpg", (0.75, 0.95, 1.25))):
        img = cv2.imread(os.path.join(aligned_dir, name)).astype(np.float32) / 255.0
        img = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA)
        img = np.clip(img * np.array(cast, np.float32) + 0.02, 0, 1)
        faces.append(img)
    save("in_face_a", faces[0])
    save("in_face_b", faces[1])
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    d = np.sqrt(((xx - 31.5) / 22) ** 2 + ((yy - 34) / 26) ** 2)
    mask = np.clip((1.15 - d) * 4, 0, 1).astype(np.float32)
    save("in_mask", mask)
    return noise, faces[0], faces[1], mask


INTERS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos4": cv2.INTER_LANCZOS4,
}
BORDERS = {
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT,
    "reflect101": cv2.BORDER_REFLECT_101,
}
WARP_M = np.array([[0.83, 0.31, -2.6], [-0.27, 0.91, 3.4]])


def warps(noise, face):
    for iname in ("nearest", "linear", "cubic", "lanczos4"):
        for bname, b in BORDERS.items():
            out = cv2.warpAffine(noise, WARP_M, (30, 22),
                                 flags=INTERS[iname] | cv2.WARP_INVERSE_MAP, borderMode=b,
                                 borderValue=(0.25, 0.25, 0.25))
            save(f"warp_inv_{iname}_{bname}", out)
        out = cv2.warpAffine(face, WARP_M, (48, 40), flags=INTERS[iname],
                             borderMode=cv2.BORDER_REPLICATE)
        save(f"warp_fwd_{iname}", out)
    yy, xx = np.mgrid[0:20, 0:26].astype(np.float32)
    mx = (xx * 0.9 - 1.5 + 2.5 * np.sin(yy * 0.45)).astype(np.float32)
    my = (yy * 0.85 - 1.0 + 2.0 * np.cos(xx * 0.3)).astype(np.float32)
    save("remap_mapx", mx)
    save("remap_mapy", my)
    for iname in ("nearest", "linear", "cubic", "lanczos4"):
        save(f"remap_{iname}", cv2.remap(noise, mx, my, INTERS[iname],
                                         borderMode=cv2.BORDER_REPLICATE))


def resizes(noise):
    for iname, i in INTERS.items():
        for (w, h) in ((11, 7), (50, 39), (17, 25), (37, 9), (12, 9)):
            save(f"resize_{iname}_{w}x{h}", cv2.resize(noise, (w, h), interpolation=i))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dfl-aligned", default="/work/shared/fixtures/dfl-aligned")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    cv2.setNumThreads(1)
    noise, face_a, face_b, mask = inputs(args.dfl_aligned)
    warps(noise, face_a)
    resizes(noise)
    GOLDEN["opencv_version"] = cv2.__version__
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(GOLDEN, f, indent=1, sort_keys=True)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1024:.0f} KiB, into {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
