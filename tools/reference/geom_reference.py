#!/usr/bin/env python3
"""Golden numbers for dfl-geom, computed independently with numpy (and OpenCV where DFL
calls OpenCV: convexHull + fillConvexPoly for the hull mask, solvePnP for the pose).

Written from the design notes (docs: ../shared/design/dfl-faces.md §1), not from DFL's code.
Everything is float64 except where DFL hands float32 to OpenCV.

Rerun (by hand, not in CI) from the repository root:

    /work/venv/bin/python tools/reference/geom_reference.py \
        crates/dfl-faceset/tests/fixtures/dfl-aligned/expected.json \
        crates/dfl-geom/tests/fixtures/geom_golden.json [path/to/dfl-faces.md]

Needs numpy and opencv-python(-headless). The output is committed; `cargo test` compares
dfl-geom against it (matrices to 1e-6, masks exactly, pose within the stated tolerance).
"""
import json
import math
import sys

import cv2
import numpy as np

PADDING = {"half_face": 0.0, "midfull_face": 0.0675, "full_face": 0.2109375,
           "full_face_no_align": 0.2109375, "whole_face": 0.40, "head": 0.70,
           "head_no_align": 0.70}
NO_ALIGN = {"full_face_no_align", "head_no_align"}
FACE_TYPES = ["half_face", "midfull_face", "full_face", "full_face_no_align",
              "whole_face", "head", "head_no_align"]


def design_table(path, header, stop):
    """Numbers of a markdown table in the design notes."""
    text = open(path).read()
    s = text.index(header)
    e = text.index(stop, s)
    rows = []
    for line in text[s:e].splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].isdigit():
            rows.append(cells)
    return rows


def load_templates(design):
    mean = {}
    for c in design_table(design, "| lmk | x | y |", "(A third array"):
        mean[int(c[0])] = (float(c[1]), float(c[2]))
    model = {}
    for c in design_table(design, "| idx | X | Y | Z | idx |", "### 1.9"):
        model[int(c[0])] = [float(v) for v in c[1:4]]
        model[int(c[4])] = [float(v) for v in c[5:8]]
    template33 = np.array([mean[i] for i in list(range(17, 49)) + [54]], np.float64)
    model3d = np.array([model[i] for i in range(68)], np.float64)
    return template33, model3d


def umeyama(src, dst):
    """Umeyama 1991 with scale, numpy conventions (§1.4)."""
    m, dim = src.shape
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    a = d_c.T @ s_c / m
    d = np.ones(dim)
    if np.linalg.det(a) < 0:
        d[dim - 1] = -1
    t = np.eye(dim + 1)
    u, sig, v = np.linalg.svd(a)
    rank = np.linalg.matrix_rank(a)
    if rank == 0:
        return np.nan * t
    if rank == dim - 1:
        if np.linalg.det(u) * np.linalg.det(v) > 0:
            r = u @ v
        else:
            dd = d.copy()
            dd[dim - 1] = -1
            r = u @ np.diag(dd) @ v
    else:
        r = u @ np.diag(d) @ v
    scale = (sig @ d) / s_c.var(0).sum()
    t[:dim, :dim] = scale * r
    t[:dim, dim] = mu_d - scale * (r @ mu_s)
    return t


def apply(m, pts):
    pts = np.asarray(pts, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def invert(m):
    a = np.linalg.inv(m[:, :2])
    return np.hstack([a, (-a @ m[:, 2])[:, None]])


def averaged_yaw(lm):
    l = np.mean([lm[27 + k, 0] - lm[k, 0] for k in range(3)])
    r = np.mean([lm[16 - k, 0] - lm[27 + k, 0] for k in range(3)])
    return r - l


def affine_3(src, dst):
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T


def transform_mat(lm, size, face_type, template33, scale=1.0):
    m0 = umeyama(np.concatenate([lm[17:49], lm[54:55]]), template33)[:2]
    inv = invert(m0)
    tl, tr, br, bl, c = apply(inv, [(0, 0), (1, 0), (1, 1), (0, 1), (0.5, 0.5)])
    tb = (br - tl) / np.linalg.norm(br - tl)
    bt = (tr - bl) / np.linalg.norm(tr - bl)
    mod = (1.0 / scale) * np.linalg.norm(tl - br) * (PADDING[face_type] * math.sqrt(2) + 0.5)
    if face_type == "whole_face":
        c = c + (tl - bl) * 0.07
    elif face_type == "head":
        yaw = averaged_yaw(apply(m0, lm))
        h = tl - tr
        yaw *= abs(math.tanh(yaw * 2))
        c = c - h / np.linalg.norm(h) * (yaw * np.linalg.norm(h) / 2)
        c = c + (tl - bl) * 0.5
    if face_type in NO_ALIGN:
        quad = np.array([c - tb * mod, c + bt * mod, c + tb * mod, c - bt * mod])
        x, y = quad[:, 0], quad[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        half = math.sqrt(area) / 2
        p = np.array([c + (-half, -half), c + (half, -half), c + (half, half)])
    else:
        p = np.array([c - tb * mod, c + bt * mod, c + tb * mod])
    return affine_3(p, np.array([(0, 0), (size, 0), (size, size)], np.float64))


def expand_eyebrows(lm, mod=1.0):
    e = np.trunc(np.asarray(lm, np.float64)).astype(np.int64)
    ml = (e[36] + e[0]) // 2
    mr = (e[16] + e[45]) // 2
    ql = (e[36] + ml) // 2
    qr = (e[45] + mr) // 2
    bot_l = np.array([ql, e[36], e[37], e[38], e[39]])
    bot_r = np.array([e[42], e[43], e[44], e[45], qr])
    top_l, top_r = e[17:22].copy(), e[22:27].copy()
    e[17:22] = np.trunc(top_l + mod * 0.5 * (top_l - bot_l)).astype(np.int64)
    e[22:27] = np.trunc(top_r + mod * 0.5 * (top_r - bot_r)).astype(np.int64)
    return e


GROUPS = [list(range(0, 9)) + [17], list(range(8, 17)) + [26], [17, 18, 19, 8],
          [24, 25, 26, 8], list(range(19, 25)) + [8],
          list(range(17, 22)) + [27] + list(range(31, 36)) + [8],
          list(range(22, 27)) + [27] + list(range(31, 36)) + [8],
          list(range(27, 31)) + list(range(31, 36))]


def rle(mask):
    runs = []
    for y in range(mask.shape[0]):
        row = mask[y]
        x = 0
        w = row.shape[0]
        while x < w:
            if row[x]:
                x0 = x
                while x < w and row[x]:
                    x += 1
                runs.append([y, x0, x - 1])
            else:
                x += 1
    return runs


def hull_mask(w, h, lm, mod=1.0):
    e = expand_eyebrows(lm, mod).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    for g in GROUPS:
        cv2.fillConvexPoly(mask, cv2.convexHull(e[g]), (1,))
    return mask


def pose(aligned, size, model3d):
    idx = list(range(0, 27)) + list(range(30, 36))
    cam = np.array([[size, 0, size / 2], [0, size, size / 2], [0, 0, 1]], np.float32)
    ok, rvec, _ = cv2.solvePnP(model3d[idx].astype(np.float32),
                               np.asarray(aligned, np.float64)[idx].astype(np.float32),
                               cam, np.zeros((4, 1)))
    r = cv2.Rodrigues(rvec)[0]
    sy = math.sqrt(r[0, 0] ** 2 + r[1, 0] ** 2)
    if sy >= 1e-6:
        x, y, z = math.atan2(r[2, 1], r[2, 2]), math.atan2(-r[2, 0], sy), math.atan2(r[1, 0], r[0, 0])
    else:
        x, y, z = math.atan2(-r[1, 2], r[1, 1]), math.atan2(-r[2, 0], sy), 0.0
    hp = math.pi / 2
    x, y, z = (float(np.clip(v, -hp, hp)) for v in (x, y, z))
    return [-x, y, z]


def case(name, lm, frame_w, frame_h, template33, model3d):
    lm = np.asarray(lm, np.float64)
    out = {"name": name, "landmarks": lm.tolist(), "frame_size": [frame_w, frame_h]}
    out["unit_mat"] = umeyama(np.concatenate([lm[17:49], lm[54:55]]), template33)[:2].tolist()
    out["mats_256"] = {t: transform_mat(lm, 256, t, template33).tolist() for t in FACE_TYPES}
    out["mat_full_512_scale_1_25"] = transform_mat(lm, 512, "full_face", template33, 1.25).tolist()
    m = transform_mat(lm, 256, "full_face_no_align", template33)
    p = apply(invert(m), [(0, 0), (255, 255)])
    out["rect"] = [p[0, 0], p[0, 1], p[1, 0], p[1, 1]]
    out["averaged_yaw_unit"] = float(averaged_yaw(apply(np.array(out["unit_mat"]), lm)))
    out["expanded_eyebrows"] = expand_eyebrows(lm).tolist()
    out["expanded_eyebrows_mod_2_5"] = expand_eyebrows(lm, 2.5).tolist()
    out["hull_mask_rle"] = rle(hull_mask(frame_w, frame_h, lm))
    # The same face aligned to 256 (whole_face) gives a mask and a pose in face space.
    mw = transform_mat(lm, 256, "whole_face", template33)
    aligned = apply(mw, lm)
    out["aligned_256_whole_face"] = aligned.tolist()
    out["aligned_hull_mask_rle"] = rle(hull_mask(256, 256, aligned))
    out["pitch_yaw_roll"] = pose(aligned, 256, model3d)
    return out


def random_polys(rng, n):
    cases = []
    for _ in range(n):
        w, h = int(rng.integers(1, 60)), int(rng.integers(1, 60))
        k = int(rng.integers(1, 9))
        pts = np.stack([rng.integers(-20, w + 20, k), rng.integers(-20, h + 20, k)], 1).astype(np.int32)
        mask = np.zeros((h, w), np.uint8)
        hull = cv2.convexHull(pts)
        cv2.fillConvexPoly(mask, hull, (1,))
        cases.append({"size": [w, h], "points": pts.tolist(), "hull": hull.reshape(-1, 2).tolist(),
                      "rle": rle(mask)})
    return cases


def main():
    expected_json, out_path = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        design = sys.argv[3]
    else:
        import os
        candidates = ["../shared/design/dfl-faces.md", "/work/shared/design/dfl-faces.md"]
        design = next(c for c in candidates if os.path.exists(c))
    template33, model3d = load_templates(design)
    expected = json.load(open(expected_json))
    cases = []
    for name, e in sorted(expected.items()):
        src = np.array(e["source_landmarks"], np.float64)
        # Frame size: enough to hold every face of sample5.jpg.
        cases.append(case(name + ":source", src, 1700, 1250, template33, model3d))
    # A synthetic face turned strongly to one side (exercises HEAD's yaw shift) and partly
    # outside a small frame (exercises clipping in the mask).
    base = np.array(expected["sample5_0.jpg"]["source_landmarks"], np.float64)
    turned = base.copy()
    cx = base[27:31, 0].mean()
    turned[:, 0] = cx + (base[:, 0] - cx) * np.where(base[:, 0] < cx, 0.45, 1.3)
    turned -= base.min(0) - (-25, 10)
    cases.append(case("turned_and_clipped", turned, 150, 180, template33, model3d))
    rng = np.random.default_rng(1234)
    out = {"generator": "tools/reference/geom_reference.py", "numpy": np.__version__,
           "opencv": cv2.__version__, "cases": cases, "random_polys": random_polys(rng, 400)}
    with open(out_path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
