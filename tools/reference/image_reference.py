#!/usr/bin/env python3
"""Golden fixtures for dfl-image: OpenCV/numpy outputs of every raster algorithm DFL uses.

How to rerun (by hand, not in CI):

    /work/venv-image/bin/python tools/reference/image_reference.py

The venv needs numpy, opencv-python-headless, scipy (IDT's random rotations) and pillow
(reduce_colors); the committed fixtures were made with numpy 2.4.6, opencv-python-headless
5.0.0.93, scipy 1.17.1 and pillow 13.0.0:
`python3 -m venv /work/venv-image && /work/venv-image/bin/pip install numpy==2.4.6
opencv-python-headless==5.0.0.93 scipy==1.17.1 pillow==13.0.0`. `--dfl-aligned DIR` points at the real DFL aligned
faces used as inputs (default: /work/shared/fixtures/dfl-aligned, from the MIT-licensed
face-api demo photo `sample5.jpg`).

Writes small files into crates/dfl-image/tests/fixtures/: `*.f32` = 16-byte header
(b"F32I", u32 LE width, height, channels) followed by interleaved little-endian float32
samples; `*.png` = 8-bit
images (seamless clone works on 8-bit data); `golden.json` = scalar expectations (statistics for the randomised transfers,
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


# --- DFL's color_transfer.py, transcribed ---

def reinhard_color_transfer(target, source, target_mask=None, source_mask=None, mask_cutoff=0.5):
    source = cv2.cvtColor(source, cv2.COLOR_BGR2LAB)
    target = cv2.cvtColor(target, cv2.COLOR_BGR2LAB)
    source_input = source
    if source_mask is not None:
        source_input = source_input.copy()
        source_input[source_mask[..., 0] < mask_cutoff] = [0, 0, 0]
    target_input = target
    if target_mask is not None:
        target_input = target_input.copy()
        target_input[target_mask[..., 0] < mask_cutoff] = [0, 0, 0]
    tlm, tls = target_input[..., 0].mean(), target_input[..., 0].std()
    tam, tas = target_input[..., 1].mean(), target_input[..., 1].std()
    tbm, tbs = target_input[..., 2].mean(), target_input[..., 2].std()
    slm, sls = source_input[..., 0].mean(), source_input[..., 0].std()
    sam, sas = source_input[..., 1].mean(), source_input[..., 1].std()
    sbm, sbs = source_input[..., 2].mean(), source_input[..., 2].std()
    target_l = (target[..., 0] - tlm) * sls / tls + slm
    target_a = (target[..., 1] - tam) * sas / tas + sam
    target_b = (target[..., 2] - tbm) * sbs / tbs + sbm
    np.clip(target_l, 0, 100, out=target_l)
    np.clip(target_a, -127, 127, out=target_a)
    np.clip(target_b, -127, 127, out=target_b)
    return cv2.cvtColor(np.stack([target_l, target_a, target_b], -1), cv2.COLOR_LAB2BGR)


def linear_color_transfer(target_img, source_img, mode='pca', eps=1e-5):
    mu_t = target_img.mean(0).mean(0)
    t = target_img - mu_t
    t = t.transpose(2, 0, 1).reshape(t.shape[-1], -1)
    Ct = t.dot(t.T) / t.shape[1] + eps * np.eye(t.shape[0])
    mu_s = source_img.mean(0).mean(0)
    s = source_img - mu_s
    s = s.transpose(2, 0, 1).reshape(s.shape[-1], -1)
    Cs = s.dot(s.T) / s.shape[1] + eps * np.eye(s.shape[0])
    eva_t, eve_t = np.linalg.eigh(Ct)
    Qt = eve_t.dot(np.sqrt(np.diag(eva_t))).dot(eve_t.T)
    eva_s, eve_s = np.linalg.eigh(Cs)
    Qs = eve_s.dot(np.sqrt(np.diag(eva_s))).dot(eve_s.T)
    ts = Qs.dot(np.linalg.inv(Qt)).dot(t)
    matched_img = ts.reshape(*target_img.transpose(2, 0, 1).shape).transpose(1, 2, 0)
    matched_img += mu_s
    matched_img[matched_img > 1] = 1
    matched_img[matched_img < 0] = 0
    return np.clip(matched_img.astype(source_img.dtype), 0, 1)


def color_transfer_mkl(x0, x1):
    eps = np.finfo(float).eps
    h, w, c = x0.shape
    h1, w1, c1 = x1.shape
    x0 = x0.reshape((h * w, c))
    x1 = x1.reshape((h1 * w1, c1))
    a = np.cov(x0.T)
    b = np.cov(x1.T)
    Da2, Ua = np.linalg.eig(a)
    Da = np.diag(np.sqrt(Da2.clip(eps, None)))
    C = np.dot(np.dot(np.dot(np.dot(Da, Ua.T), b), Ua), Da)
    Dc2, Uc = np.linalg.eig(C)
    Dc = np.diag(np.sqrt(Dc2.clip(eps, None)))
    Da_inv = np.diag(1. / (np.diag(Da)))
    t = np.dot(np.dot(np.dot(np.dot(np.dot(np.dot(Ua, Da_inv), Uc), Dc), Uc.T), Da_inv), Ua.T)
    mx0 = np.mean(x0, axis=0)
    mx1 = np.mean(x1, axis=0)
    result = np.dot(x0 - mx0, t) + mx1
    return np.clip(result.reshape((h, w, c)).astype(x0.dtype), 0, 1)


def color_transfer_idt(i0, i1, bins=256, n_rot=20):
    import scipy.stats
    relaxation = 1 / n_rot
    h, w, c = i0.shape
    h1, w1, c1 = i1.shape
    i0 = i0.reshape((h * w, c))
    i1 = i1.reshape((h1 * w1, c1))
    n_dims = c
    d0 = i0.T
    d1 = i1.T
    for i in range(n_rot):
        r = scipy.stats.special_ortho_group.rvs(n_dims).astype(np.float32)
        d0r = np.dot(r, d0)
        d1r = np.dot(r, d1)
        d_r = np.empty_like(d0)
        for j in range(n_dims):
            lo = min(d0r[j].min(), d1r[j].min())
            hi = max(d0r[j].max(), d1r[j].max())
            p0r, edges = np.histogram(d0r[j], bins=bins, range=[lo, hi])
            p1r, _ = np.histogram(d1r[j], bins=bins, range=[lo, hi])
            cp0r = p0r.cumsum().astype(np.float32)
            cp0r /= cp0r[-1]
            cp1r = p1r.cumsum().astype(np.float32)
            cp1r /= cp1r[-1]
            f = np.interp(cp0r, cp1r, edges[1:])
            d_r[j] = np.interp(d0r[j], edges[1:], f, left=0, right=bins)
        d0 = relaxation * np.linalg.solve(r, (d_r - d0r)) + d0
    return np.clip(d0.T.reshape((h, w, c)).astype(i0.dtype), 0, 1)


def color_transfer_sot(src, trg, steps=10, batch_size=5, reg_sigmaXY=16.0, reg_sigmaV=5.0):
    h, w, c = src.shape
    new_src = src.copy()
    advect = np.empty((h * w, c), dtype=src.dtype)
    for step in range(steps):
        advect.fill(0)
        for batch in range(batch_size):
            dir = np.random.normal(size=c).astype(src.dtype)
            dir /= np.linalg.norm(dir)
            projsource = np.sum(new_src * dir, axis=-1).reshape((h * w))
            projtarget = np.sum(trg * dir, axis=-1).reshape((h * w))
            idSource = np.argsort(projsource)
            idTarget = np.argsort(projtarget)
            a = projtarget[idTarget] - projsource[idSource]
            for i_c in range(c):
                advect[idSource, i_c] += a * dir[i_c]
        new_src += advect.reshape((h, w, c)) / batch_size
    if reg_sigmaXY != 0.0:
        src_diff = new_src - src
        src_diff_filt = cv2.bilateralFilter(src_diff, 0, reg_sigmaV, reg_sigmaXY)
        if len(src_diff_filt.shape) == 2:
            src_diff_filt = src_diff_filt[..., None]
        new_src = src + src_diff_filt
    return new_src


def color_transfer_mix(img_src, img_trg):
    img_src = np.clip(img_src * 255.0, 0, 255).astype(np.uint8)
    img_trg = np.clip(img_trg * 255.0, 0, 255).astype(np.uint8)
    img_src_lab = cv2.cvtColor(img_src, cv2.COLOR_BGR2LAB)
    img_trg_lab = cv2.cvtColor(img_trg, cv2.COLOR_BGR2LAB)
    rct_light = np.clip(linear_color_transfer(img_src_lab[..., 0:1].astype(np.float32) / 255.0,
                                              img_trg_lab[..., 0:1].astype(np.float32) / 255.0)[..., 0] * 255.0,
                        0, 255).astype(np.uint8)
    img_src_lab[..., 0] = (np.ones_like(rct_light) * 100).astype(np.uint8)
    img_src_lab = cv2.cvtColor(img_src_lab, cv2.COLOR_LAB2BGR)
    img_trg_lab[..., 0] = (np.ones_like(rct_light) * 100).astype(np.uint8)
    img_trg_lab = cv2.cvtColor(img_trg_lab, cv2.COLOR_LAB2BGR)
    img_rct = color_transfer_sot(img_src_lab.astype(np.float32), img_trg_lab.astype(np.float32))
    img_rct = np.clip(img_rct, 0, 255).astype(np.uint8)
    img_rct = cv2.cvtColor(img_rct, cv2.COLOR_BGR2LAB)
    img_rct[..., 0] = rct_light
    img_rct = cv2.cvtColor(img_rct, cv2.COLOR_LAB2BGR)
    return (img_rct / 255.0).astype(np.float32)


def channel_hist_match(source, template, hist_match_threshold=255):
    oldshape = source.shape
    source = source.ravel()
    template = template.ravel()
    s_values, bin_idx, s_counts = np.unique(source, return_inverse=True, return_counts=True)
    t_values, t_counts = np.unique(template, return_counts=True)
    s_quantiles = np.cumsum(s_counts).astype(np.float64)
    s_quantiles = hist_match_threshold * s_quantiles / s_quantiles[-1]
    t_quantiles = np.cumsum(t_counts).astype(np.float64)
    t_quantiles = 255 * t_quantiles / t_quantiles[-1]
    interp_t_values = np.interp(s_quantiles, t_quantiles, t_values)
    return interp_t_values[bin_idx].reshape(oldshape)


def color_hist_match(src_im, tar_im, hist_match_threshold=255):
    h, w, c = src_im.shape
    to_stack = tuple(channel_hist_match(src_im[:, :, i], tar_im[:, :, i], hist_match_threshold)
                     for i in range(3))
    for i in range(3, c):
        to_stack += (src_im[:, :, i],)
    return np.stack(to_stack, axis=-1).astype(src_im.dtype)


def w1(a, b):
    """Per-channel 1-D Wasserstein distance between two equally sized pixel sets."""
    a = np.sort(a.reshape(-1, a.shape[-1]), axis=0)
    b = np.sort(b.reshape(-1, b.shape[-1]), axis=0)
    return np.abs(a - b).mean(axis=0)


def random_stats(name, fn, runs=8):
    """Channel means/stds of a randomised transfer over several numpy seeds, their spread,
    and the W1 distance between runs (how far two honest runs land from each other)."""
    outs = []
    for seed in range(runs):
        np.random.seed(seed)
        outs.append(fn().astype(np.float64))
    means = np.array([o.reshape(-1, 3).mean(0) for o in outs])
    stds = np.array([o.reshape(-1, 3).std(0) for o in outs])
    GOLDEN[f"{name}_mean"] = means.mean(0).tolist()
    GOLDEN[f"{name}_std"] = stds.mean(0).tolist()
    GOLDEN[f"{name}_mean_spread"] = float(np.abs(means - means.mean(0)).max())
    GOLDEN[f"{name}_std_spread"] = float(np.abs(stds - stds.mean(0)).max())
    GOLDEN[f"{name}_w1_between_runs"] = float(max(w1(outs[0], o).max() for o in outs[1:]))
    save(name, outs[0])


def transfers(face_a, face_b, mask):
    m3 = mask[..., None]
    save("rct", reinhard_color_transfer(face_a, face_b))
    save("rct_masked", reinhard_color_transfer(face_a, face_b, target_mask=m3, source_mask=m3))
    save("lct", linear_color_transfer(face_a, face_b))
    save("mkl", color_transfer_mkl(face_a, face_b))
    save("mkl_m", color_transfer_mkl(face_a * m3, face_b * m3))
    save("hist_255", color_hist_match(face_a, face_b, 255))
    save("hist_200", color_hist_match(face_a, face_b, 200))
    # The merger's hist-match call: masked, white outside the mask.
    h = (mask > 0.5).astype(np.float32)[..., None]
    white = 1.0 - h
    a = np.minimum(face_a * h + white, 1.0)
    b = face_b * h + white
    save("hist_merger_238", color_hist_match(a, b, 238))
    rng = np.random.default_rng(5)
    flat = np.full((20, 24, 3), 0.4, np.float32)
    save("in_bil", (cv2.GaussianBlur(rng.random((20, 24, 3)).astype(np.float32), (0, 0), 1.5) - 0.5) * 0.4)
    bil = load_back("in_bil")
    save("bilateral_5_16", cv2.bilateralFilter(bil, 0, 5, 16))
    save("bilateral_01_3", cv2.bilateralFilter(bil, 0, 0.1, 3))
    save("bilateral_1ch", cv2.bilateralFilter(np.ascontiguousarray(bil[..., 1]), 5, 0.05, 2))
    GOLDEN["bilateral_flat_max_change"] = float(np.abs(cv2.bilateralFilter(flat, 0, 5, 16) - flat).max())
    random_stats("idt", lambda: color_transfer_idt(face_a, face_b))
    random_stats("idt_m", lambda: color_transfer_idt(face_a * m3, face_b * m3))
    random_stats("sot", lambda: np.clip(color_transfer_sot(face_a, face_b), 0, 1))
    random_stats("sot_m", lambda: np.clip(color_transfer_sot(face_a * m3, face_b * m3, steps=10,
                                                             batch_size=30), 0, 1))
    random_stats("mix_m", lambda: color_transfer_mix(face_a * m3, face_b * m3), runs=4)
    # 8-bit Lab both ways (MIX works in 8-bit Lab).
    f8 = (face_a * 255).astype(np.uint8)
    save("lab8_of_face", cv2.cvtColor(f8, cv2.COLOR_BGR2LAB).astype(np.float32))
    lab8 = rng.integers(0, 256, (18, 24, 3)).astype(np.uint8)
    save("in_lab8", lab8.astype(np.float32))
    save("bgr8_of_lab8", cv2.cvtColor(lab8, cv2.COLOR_LAB2BGR).astype(np.float32))


def seamless(aligned_dir, face_a):
    frame = cv2.imread(os.path.join(aligned_dir, "sample5_1.jpg"))
    frame = cv2.resize(frame, (96, 80), interpolation=cv2.INTER_AREA)
    src = frame.copy()
    face8 = (np.clip(face_a * np.array([1.1, 0.9, 0.8], np.float32), 0, 1) * 255).astype(np.uint8)
    src[16:16 + FACE, 24:24 + FACE] = face8
    mask = np.zeros((80, 96), np.uint8)
    cv2.ellipse(mask, (48, 41), (17, 21), 0, 0, 360, 255, -1)
    x, y, w, h = cv2.boundingRect(mask)
    center = (int(x + w / 2), int(y + h / 2))
    GOLDEN["clone_center"] = list(center)
    cv2.imwrite(os.path.join(OUT, "clone_dst.png"), frame)
    cv2.imwrite(os.path.join(OUT, "clone_src.png"), src)
    cv2.imwrite(os.path.join(OUT, "clone_mask.png"), mask)
    cv2.imwrite(os.path.join(OUT, "clone_out.png"), cv2.seamlessClone(src, frame, mask, center, cv2.NORMAL_CLONE))
    # Only DFL's in-place centre is a fixture: for a centre that moves the box, OpenCV 5.0
    # departs from OpenCV 4.x (verified with 4.8.1); dfl-image follows 4.x there (unit test).


def load_back(name):
    with open(os.path.join(OUT, name + ".f32"), "rb") as f:
        b = f.read()
    w, h, c = struct.unpack("<III", b[4:16])
    return np.frombuffer(b[16:], "<f4").reshape(h, w, c).copy()


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
    transfers(face_a, face_b, mask)
    seamless(args.dfl_aligned, face_a)
    GOLDEN["opencv_version"] = cv2.__version__
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(GOLDEN, f, indent=1, sort_keys=True)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1024:.0f} KiB, into {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
