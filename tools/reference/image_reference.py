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
FACE = 48  # side of the face fixtures (small keeps the committed fixtures small)


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
        img = cv2.resize(img, (FACE, FACE), interpolation=cv2.INTER_AREA)
        img = np.clip(img * np.array(cast, np.float32) + 0.02, 0, 1)
        faces.append(img)
    save("in_face_a", faces[0])
    save("in_face_b", faces[1])
    yy, xx = np.mgrid[0:FACE, 0:FACE].astype(np.float32)
    d = np.sqrt(((xx - FACE * 0.49) / (FACE * 0.34)) ** 2 + ((yy - FACE * 0.53) / (FACE * 0.4)) ** 2)
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


def filters(noise, face):
    save("gauss_s2", cv2.GaussianBlur(face, (0, 0), 2))
    save("gauss_k9", cv2.GaussianBlur(face, (9, 9), 0))
    save("gauss_k3", cv2.GaussianBlur(noise, (3, 3), 0))
    save("gauss_k15_s4", cv2.GaussianBlur(noise, (15, 15), 4))
    save("box_3x3", cv2.blur(noise, (3, 3)))
    save("box_4x2", cv2.blur(noise, (4, 2)))
    rng = np.random.default_rng(7)
    k3 = rng.normal(size=(3, 3)).astype(np.float32)
    k4 = rng.random((4, 5)).astype(np.float32)
    k13 = rng.random((13, 13)).astype(np.float32)
    k13 /= k13.sum()
    for name, k in (("k3", k3), ("k4x5", k4), ("k13", k13)):
        save(f"kernel_{name}", k)
        save(f"filter2d_{name}", cv2.filter2D(noise, -1, k))
    save("median_3", cv2.medianBlur(noise, 3))
    save("median_5", cv2.medianBlur(noise, 5))


def colors(noise, face):
    wide = (noise * 1.3 - 0.15).astype(np.float32)  # some samples outside [0, 1]
    save("in_wide", wide)
    save("lab_of_face", cv2.cvtColor(face, cv2.COLOR_BGR2Lab))
    save("lab_of_wide", cv2.cvtColor(wide, cv2.COLOR_BGR2Lab))
    save("lab_of_face_rgb", cv2.cvtColor(face, cv2.COLOR_RGB2Lab))
    rng = np.random.default_rng(11)
    lab = np.stack([rng.random((18, 24)) * 100, rng.random((18, 24)) * 254 - 127,
                    rng.random((18, 24)) * 254 - 127], -1).astype(np.float32)
    save("in_lab", lab)
    save("bgr_of_lab", cv2.cvtColor(lab, cv2.COLOR_Lab2BGR))
    save("hsv_of_face", cv2.cvtColor(face, cv2.COLOR_BGR2HSV))
    # Hues in [0, 720): OpenCV 5 returns out-of-range values for negative hues (DFL never
    # passes any: it wraps with numpy's %), while dfl-image wraps them modulo 360.
    hsv = np.stack([rng.random((18, 24)) * 720, rng.random((18, 24)),
                    rng.random((18, 24))], -1).astype(np.float32)
    save("in_hsv", hsv)
    save("bgr_of_hsv", cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def morphology(noise, mask):
    ell = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    save("erode_ell7_mask", cv2.erode(mask, ell, iterations=1))
    save("dilate_ell12_noise", cv2.dilate(noise, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (12, 12))))
    save("dilate_ell5x3_noise", cv2.dilate(noise, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 3))))
    save("erode_rect3_it3_mask", cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=3))
    save("erode_ell41_mask", cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (41, 41))))


# --- DFL's imagelib functions, transcribed (shared/design/dfl-merge.md 7.3, 7.6) ---

def blursharpen(img, sharpen_mode=0, kernel_size=3, amount=100):
    if kernel_size % 2 == 0:
        kernel_size += 1
    if amount > 0:
        if sharpen_mode == 1:
            kernel = np.zeros((kernel_size, kernel_size), dtype=np.float32)
            kernel[kernel_size // 2, kernel_size // 2] = 1.0
            box_filter = np.ones((kernel_size, kernel_size), dtype=np.float32) / (kernel_size ** 2)
            kernel = kernel + (kernel - box_filter) * amount
            return cv2.filter2D(img, -1, kernel)
        elif sharpen_mode == 2:
            blur = cv2.GaussianBlur(img, (kernel_size, kernel_size), 0)
            return cv2.addWeighted(img, 1.0 + (0.5 * amount), blur, -(0.5 * amount), 0)
    elif amount < 0:
        n = -amount
        while n > 0:
            img_blur = cv2.medianBlur(img, 5)
            if int(n / 10) != 0:
                img = img_blur
            else:
                pass_power = (n % 10) / 10.0
                img = img * (1.0 - pass_power) + img_blur * pass_power
            n = max(n - 10, 0)
        return img
    return img


def linear_motion_blur(image, size, angle):
    k = np.zeros((size, size), dtype=np.float32)
    k[(size - 1) // 2, :] = np.ones(size, dtype=np.float32)
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, 1.0), (size, size))
    k = k * (1.0 / np.sum(k))
    return cv2.filter2D(image, -1, k)


def denoise(img_bgr, power):
    n = power
    while n > 0:
        img_bgr_denoised = cv2.medianBlur(img_bgr, 5)
        if int(n / 100) != 0:
            img_bgr = img_bgr_denoised
        else:
            pass_power = (n % 100) / 100.0
            img_bgr = img_bgr * (1.0 - pass_power) + img_bgr_denoised * pass_power
        n = max(n - 10, 0)
    return img_bgr


def bicubic_degrade(img_bgr, power):
    p = 1.0 - power / 101.0
    h, w = img_bgr.shape[:2]
    small = cv2.resize(img_bgr, (int(w * p), int(h * p)), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def reduce_colors(img_bgr, n_colors):
    from PIL import Image
    img_rgb = (img_bgr[..., ::-1] * 255.0).astype(np.uint8)
    img_rgb_p = Image.fromarray(img_rgb).convert('P', palette=Image.ADAPTIVE, colors=n_colors).convert('RGB')
    return cv2.cvtColor(np.array(img_rgb_p, dtype=np.float32) / 255.0, cv2.COLOR_RGB2BGR)


def effects(noise, face):
    save("sharpen_box3_a5", blursharpen(face, 1, 3, 5))
    save("sharpen_gauss3_a20", blursharpen(face, 2, 3, 20))
    save("sharpen_gauss4_a7", blursharpen(noise, 2, 4, 7))
    save("blur_median_a25", blursharpen(face, 1, 3, -25))
    save("motion_7_33", linear_motion_blur(face, 7, 33))
    save("motion_4_90", linear_motion_blur(noise, 4, 90))
    save("motion_12_200", linear_motion_blur(face, 12, 200))
    save("denoise_150", denoise(face, 150))
    save("bicubic_degrade_40", bicubic_degrade(face, 40))
    rc = reduce_colors(face, 256)
    save("reduce_colors_256", rc)
    rc16 = reduce_colors(face, 16)
    save("reduce_colors_16", rc16)
    q = np.floor(np.clip(face * 255, 0, 255)) / 255
    GOLDEN["reduce_colors_16_pil_rmse"] = float(np.sqrt(np.mean((rc16 - q) ** 2)))
    GOLDEN["reduce_colors_256_pil_rmse"] = float(np.sqrt(np.mean((rc - q) ** 2)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dfl-aligned", default="/work/shared/fixtures/dfl-aligned")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    cv2.setNumThreads(1)
    noise, face_a, face_b, mask = inputs(args.dfl_aligned)
    warps(noise, face_a)
    resizes(noise)
    filters(noise, face_a)
    colors(noise, face_a)
    morphology(noise, mask)
    effects(noise, face_a)
    GOLDEN["opencv_version"] = cv2.__version__
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(GOLDEN, f, indent=1, sort_keys=True)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1024:.0f} KiB, into {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
