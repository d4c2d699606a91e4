#!/usr/bin/env python3
"""Independent Python writer and reader of DFL's aligned-face format (DFLJPG) and
faceset.pak, used to cross-check dfl-faceset in both directions.

Written from the design notes (../shared/design/dfl-faces.md §2.1 and §2.2), not from DFL's
code: the metadata is a dict pickled with Python's own `pickle` (numpy arrays included) and
stored in a JPEG APP15 segment placed after the last APPn segment.

Two commands, run by hand from the repository root (needs numpy and opencv-python):

    # 1. Write the Python-made fixtures (py_*.jpg, py_faceset.pak, base.jpg) and the JSON
    #    description of every key and its Python type (py_written.json):
    /work/venv/bin/python tools/reference/dfljpg_reference.py write crates/dfl-faceset/tests/fixtures/cross

    # 2. After `DFL_UPDATE_FIXTURES=1 cargo test --release --workspace -j 2 -- cross_check`
    #    has written ours_*.jpg, ours_faceset.pak and ours_meta.dat with dfl-rs, read them with
    #    pickle.loads and record what Python sees (ours_read_by_python.json):
    /work/venv/bin/python tools/reference/dfljpg_reference.py read crates/dfl-faceset/tests/fixtures/cross

`cargo test` then checks that dfl-rs reads py_* with every key equal to py_written.json,
still writes ours_* byte for byte, and that Python's view of ours_* equals what dfl-rs meant.
"""
import enum
import hashlib
import json
import pickle
import struct
import sys
import types
from pathlib import Path

import cv2
import numpy as np


# DFL's two IntEnums appear (by module path) in faceset.pak headers; define stand-ins under
# the same module paths so pickle writes and reads the same globals DFL uses.
def _install_enum_modules():
    for mod in ("samplelib", "samplelib.Sample", "facelib", "facelib.FaceType"):
        sys.modules.setdefault(mod, types.ModuleType(mod))

    class SampleType(enum.IntEnum):
        IMAGE = 0
        FACE_BEGIN = 1
        FACE = 1

    class FaceType(enum.IntEnum):
        HALF = 0
        MID_FULL = 1
        FULL = 2
        FULL_NO_ALIGN = 3
        WHOLE_FACE = 4
        HEAD = 10
        HEAD_NO_ALIGN = 20
        MARK_ONLY = 100

    SampleType.__module__ = "samplelib.Sample"
    SampleType.__qualname__ = "SampleType"
    FaceType.__module__ = "facelib.FaceType"
    FaceType.__qualname__ = "FaceType"
    sys.modules["samplelib.Sample"].SampleType = SampleType
    sys.modules["facelib.FaceType"].FaceType = FaceType
    return SampleType, FaceType


SampleType, FaceTypeEnum = _install_enum_modules()
FACE_TYPE_CODES = {"half_face": 0, "midfull_face": 1, "full_face": 2, "full_face_no_align": 3,
                   "whole_face": 4, "head": 10, "head_no_align": 20, "mark_only": 100}


def segments(jpeg):
    """(marker, start, end) of every header segment up to the first SOS."""
    assert jpeg[:2] == b"\xff\xd8"
    pos, out = 2, []
    while True:
        assert jpeg[pos] == 0xFF
        m = jpeg[pos + 1]
        if 0xD0 <= m <= 0xD7 or m == 0x01:
            pos += 2
            continue
        (length,) = struct.unpack(">H", jpeg[pos + 2:pos + 4])
        out.append((m, pos, pos + 2 + length))
        pos += 2 + length
        if m == 0xDA:
            return out


def set_app15(jpeg, payload):
    assert len(payload) <= 65533
    segs = segments(jpeg)
    app15 = [(s, e) for m, s, e in segs if m == 0xEF]
    body = bytearray(jpeg)
    for s, e in reversed(app15):
        del body[s:e]
    segs = segments(bytes(body))
    appn = [e for m, s, e in segs if 0xE0 <= m <= 0xEF]
    at = appn[-1] if appn else 2
    seg = b"\xff\xef" + struct.pack(">H", len(payload) + 2) + payload
    return bytes(body[:at]) + seg + bytes(body[at:])


def get_app15(jpeg):
    found = None
    for m, s, e in segments(jpeg):
        if m == 0xEF:
            found = jpeg[s + 4:e]
    return found


def describe(v):
    """A JSON form of a pickled value that keeps its Python/numpy type."""
    if isinstance(v, np.ndarray):
        d = {"dtype": v.dtype.str, "shape": list(v.shape)}
        if v.dtype == np.uint8:
            d["hex"] = v.tobytes().hex()
        else:
            d["values"] = v.reshape(-1).tolist()
        return {"ndarray": d}
    if isinstance(v, np.generic):
        return {"numpy_scalar": {"dtype": v.dtype.str, "value": v.item()}}
    if isinstance(v, enum.IntEnum):
        return {"enum": [type(v).__module__ + "." + type(v).__qualname__, int(v)]}
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": v}
    if isinstance(v, float):
        return {"float": v}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if v is None:
        return {"none": None}
    if isinstance(v, list):
        return {"list": [describe(x) for x in v]}
    if isinstance(v, tuple):
        return {"tuple": [describe(x) for x in v]}
    if isinstance(v, dict):
        return {"dict": [[describe(k), describe(x)] for k, x in v.items()]}
    raise TypeError(type(v))


def landmarks(k, scale=1.0):
    rng = np.random.default_rng(k)
    return [[float(x), float(y)] for x, y in rng.uniform(5, 90, (68, 2)) * scale]


def base_jpeg():
    img = np.zeros((96, 96, 3), np.uint8)
    img[..., 0] = np.arange(96)[None, :] * 2
    img[..., 1] = np.arange(96)[:, None] * 2
    cv2.circle(img, (48, 48), 30, (40, 200, 90), -1)
    ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), 90])
    assert ok
    return buf.tobytes()


def with_numpy_core(p2):
    """Protocol-2 pickle as numpy 1.x (DFL's numpy) spells it: numpy.core.multiarray."""
    return p2.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write(out):
    out.mkdir(parents=True, exist_ok=True)
    base = base_jpeg()
    (out / "base.jpg").write_bytes(base)
    mask = np.zeros((64, 64), np.uint8)
    cv2.circle(mask, (32, 30), 20, 255, -1)
    png = cv2.imencode(".png", mask)[1]
    jpg = cv2.imencode(".jpg", mask, [int(cv2.IMWRITE_JPEG_QUALITY), 80])[1]

    full = {
        "face_type": "whole_face",
        "landmarks": landmarks(1),
        "source_filename": "00042.png",
        "source_rect": np.array([10, 20, 110, 140], np.int64),
        "source_landmarks": landmarks(2, 7.5),
        "image_to_face_mat": np.array([[0.5, 0.01, -3.25], [-0.01, 0.5, 7.125]], np.float64),
        "seg_ie_polys": {"polys": [
            {"type": 1, "pts": np.array([[1, 2], [80, 3], [70.5, 90.25], [4, 60]], np.float32)},
            {"type": 0, "pts": np.array([[30, 30], [40, 31], [35, 44.5]], np.float32)},
        ]},
        "xseg_mask": png,
        "eyebrows_expand_mod": 1.5,
    }
    minimal = {"face_type": "head", "landmarks": landmarks(3)}
    legacy = {
        "face_type": "full_face",
        "landmarks": np.array(landmarks(4), np.float32),
        "source_filename": "frame 7.jpg",
        "source_rect": np.array([1, 2, 3, 4], np.int32),
        "seg_ie_polys": [(1, [[1.0, 1.0], [50.0, 2.0], [25.0, 40.0]]),
                         (0, np.array([[10, 10], [20, 10], [15, 20]], np.float32))],
        "xseg_mask": jpg,
        "eyebrows_expand_mod": np.float32(1.25),
        "pitch_yaw_roll": (0.1, -0.2, 0.3),
    }
    cases = {
        "py_full.jpg": pickle.dumps(full, protocol=4),
        "py_minimal.jpg": pickle.dumps(minimal, protocol=3),
        "py_legacy.jpg": with_numpy_core(pickle.dumps(legacy, protocol=2)),
    }
    described = {}
    for name, payload in cases.items():
        (out / name).write_bytes(set_app15(base, payload))
        described[name] = describe(pickle.loads(payload))

    # A pak of the py_ files, written the way DFL's packer lays it out (absolute last offset).
    names = sorted(cases)
    configs = []
    for name in names:
        d = pickle.loads(get_app15((out / name).read_bytes()))
        polys = d.get("seg_ie_polys")
        if isinstance(polys, list):
            polys = {"polys": [{"type": t, "pts": np.asarray(p, np.float32)} for t, p in polys]}
        configs.append({
            "sample_type": SampleType.FACE,
            "filename": name,
            "face_type": FaceTypeEnum(FACE_TYPE_CODES[d.get("face_type", "full_face")]),
            "shape": (96, 96, 3),
            "landmarks": np.asarray(d["landmarks"]).tolist(),
            "seg_ie_polys": polys or {"polys": []},
            "xseg_mask": None,
            "xseg_mask_compressed": d.get("xseg_mask"),
            "eyebrows_expand_mod": float(d.get("eyebrows_expand_mod", 1.0)),
            "source_filename": d.get("source_filename"),
            "person_name": None,
        })
    header = pickle.dumps(configs, protocol=4)
    blobs = [(out / n).read_bytes() for n in names]
    table_at = 16 + len(header)
    data_start = table_at + 8 * (len(blobs) + 1)
    offsets, pos = [], 0
    for b in blobs:
        offsets.append(pos)
        pos += len(b)
    offsets.append(data_start + pos)  # DFL's quirk: the last offset is absolute
    pak = struct.pack("<QQ", 1, len(header)) + header + b"".join(struct.pack("<Q", o) for o in offsets)
    pak += b"".join(blobs)
    (out / "py_faceset.pak").write_bytes(pak)
    described["py_faceset.pak"] = {"files": names, "header": describe(configs)}
    with open(out / "py_written.json", "w") as f:
        json.dump(described, f, separators=(",", ":"))
        f.write("\n")


def read_pak(path):
    data = path.read_bytes()
    version, n = struct.unpack("<QQ", data[:16])
    assert version == 1
    configs = pickle.loads(data[16:16 + n])
    count = len(configs)
    table = 16 + n
    offsets = struct.unpack("<%dQ" % (count + 1), data[table:table + 8 * (count + 1)])
    start = table + 8 * (count + 1)
    files = {}
    for i, c in enumerate(configs):
        # DFL's reader: data_start + offset, length = next offset - offset (reads to EOF at most).
        files[c["filename"]] = data[start + offsets[i]:start + offsets[i + 1]]
    return configs, files, offsets, start


def read(out):
    seen = {}
    for path in sorted(out.glob("ours_*.jpg")):
        jpeg = path.read_bytes()
        d = pickle.loads(get_app15(jpeg))
        entry = {"dict": describe(d)}
        if "xseg_mask" in d:
            m = cv2.imdecode(d["xseg_mask"], cv2.IMREAD_UNCHANGED)
            entry["xseg_mask_decoded_shape"] = list(m.shape)
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
        entry["image_shape"] = list(img.shape)
        seen[path.name] = entry
    pak = out / "ours_faceset.pak"
    if pak.exists():
        configs, files, offsets, start = read_pak(pak)
        seen["ours_faceset.pak"] = {
            "header": describe(configs),
            "files_equal": {name: b == (out / name).read_bytes() for name, b in files.items()},
            "last_offset_relative": offsets[-1] + start == pak.stat().st_size,
            "sha256": hashlib.sha256(pak.read_bytes()).hexdigest(),
        }
    meta = out / "ours_meta.dat"
    if meta.exists():
        d = pickle.loads(meta.read_bytes())
        seen["ours_meta.dat"] = describe(d)
        for name, (shape, dfl_dict) in d.items():
            # DFL's restore: the shape is compared with the image's, the dict is written back.
            img = cv2.imdecode(np.frombuffer((out / name).read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
            assert tuple(shape) == img.shape, (shape, img.shape)
            assert describe(dfl_dict) == describe(pickle.loads(get_app15((out / name).read_bytes())))
    with open(out / "ours_read_by_python.json", "w") as f:
        json.dump(seen, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    cmd, folder = sys.argv[1], Path(sys.argv[2])
    {"write": write, "read": read}[cmd](folder)
