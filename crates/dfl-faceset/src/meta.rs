//! DFL's aligned-face metadata dict (§2.1 of the design notes) as a typed struct, converted
//! to and from the pickled dict with exactly the Python/numpy types DFL writes.

use crate::Error;
use crate::pickle::{DType, NdArray, Value};
use crate::xseg::XsegMask;
use dfl_geom::{Affine, FaceType, Pt};

/// An XSeg editor polygon: include (1) or exclude (0) region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolyType {
    /// Area removed from the mask (type 0).
    Exclude,
    /// Area added to the mask (type 1).
    Include,
}

impl PolyType {
    /// DFL's integer for the type.
    pub fn code(self) -> i64 {
        match self {
            PolyType::Exclude => 0,
            PolyType::Include => 1,
        }
    }
}

/// One XSeg polygon, in aligned-image pixels (float32, as DFL stores them).
#[derive(Debug, Clone, PartialEq)]
pub struct SegPoly {
    /// Include or exclude.
    pub kind: PolyType,
    /// Vertices (x, y).
    pub pts: Vec<[f32; 2]>,
}

/// The metadata of one aligned face. Every DFL key is optional because DFL files may lack
/// any of them; keys this struct does not know are kept in `extra` and written back
/// unchanged, so a round trip through dfl-rs loses nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaceMeta {
    /// `face_type` (stored as DFL's string).
    pub face_type: Option<FaceType>,
    /// `landmarks`: 68 points in the aligned image (list of [x, y] floats).
    pub landmarks: Option<Vec<Pt>>,
    /// `source_filename`: the frame's file name.
    pub source_filename: Option<String>,
    /// `source_rect`: detector rect (l, t, r, b) in the frame (numpy int array).
    pub source_rect: Option<[i64; 4]>,
    /// `source_landmarks`: 68 points in the frame.
    pub source_landmarks: Option<Vec<Pt>>,
    /// `image_to_face_mat`: frame → aligned image (numpy float64 2x3).
    pub image_to_face_mat: Option<Affine>,
    /// `seg_ie_polys`: XSeg polygons in stored order (DFL reorders include-first on load;
    /// rasterisation does that, the stored order is kept here).
    pub seg_ie_polys: Option<Vec<SegPoly>>,
    /// `xseg_mask`: the applied XSeg mask, encoded (PNG or JPEG bytes).
    pub xseg_mask: Option<XsegMask>,
    /// `eyebrows_expand_mod`: hull-mask eyebrow push (DFL assumes 1.0 when absent).
    pub eyebrows_expand_mod: Option<f64>,
    /// Keys DFL 2.0 does not write (older tools, forks), kept verbatim in file order.
    pub extra: Vec<(String, Value)>,
}

/// The keys this struct maps, in the order DFL's extractor writes them.
pub const KNOWN_KEYS: [&str; 9] = [
    "face_type",
    "landmarks",
    "source_filename",
    "source_rect",
    "source_landmarks",
    "image_to_face_mat",
    "seg_ie_polys",
    "xseg_mask",
    "eyebrows_expand_mod",
];

fn bad(key: &str, problem: impl Into<String>) -> Error {
    Error::Metadata {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// A list of [x, y] pairs (lists/tuples of numbers) or an (N, 2) numeric array.
fn points(key: &str, v: &Value) -> Result<Vec<Pt>, Error> {
    match v {
        Value::Array(a) => {
            if a.shape.len() != 2 || a.shape[1] != 2 {
                return Err(bad(
                    key,
                    format!("array of shape {:?}, expected (N, 2)", a.shape),
                ));
            }
            let f = a.to_f64();
            Ok(f.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
        }
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .map(|p| {
                let pair = match p {
                    Value::Array(a) if a.len() == 2 => {
                        let f = a.to_f64();
                        return Ok([f[0], f[1]]);
                    }
                    _ => p.as_seq(),
                };
                match pair {
                    Some([x, y]) => match (x.as_f64(), y.as_f64()) {
                        (Some(x), Some(y)) => Ok([x, y]),
                        _ => Err(bad(key, "a point has a non-numeric coordinate")),
                    },
                    _ => Err(bad(key, "a point is not an [x, y] pair")),
                }
            })
            .collect(),
        _ => Err(bad(
            key,
            "expected a list of [x, y] points or an (N, 2) array",
        )),
    }
}

fn numbers(key: &str, v: &Value) -> Result<Vec<f64>, Error> {
    match v {
        Value::Array(a) => Ok(a.to_f64()),
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .map(|x| x.as_f64().ok_or_else(|| bad(key, "non-numeric entry")))
            .collect(),
        _ => Err(bad(key, "expected numbers")),
    }
}

fn polys(v: &Value) -> Result<Vec<SegPoly>, Error> {
    const KEY: &str = "seg_ie_polys";
    let parse_pts = |v: &Value| -> Result<Vec<[f32; 2]>, Error> {
        // DFL stores float32 arrays; legacy lists are converted to float32 like DFL does.
        Ok(points(KEY, v)?
            .into_iter()
            .map(|p| [p[0] as f32, p[1] as f32])
            .collect())
    };
    let parse_type = |v: &Value| -> Result<PolyType, Error> {
        match v.as_i64() {
            Some(0) => Ok(PolyType::Exclude),
            Some(1) => Ok(PolyType::Include),
            _ => Err(bad(KEY, "polygon type must be 0 (exclude) or 1 (include)")),
        }
    };
    match v {
        Value::Dict(_) => {
            let list = v
                .get("polys")
                .and_then(Value::as_seq)
                .ok_or_else(|| bad(KEY, "dict without a 'polys' list"))?;
            list.iter()
                .map(|p| {
                    let kind = parse_type(
                        p.get("type")
                            .ok_or_else(|| bad(KEY, "polygon without 'type'"))?,
                    )?;
                    let pts = parse_pts(
                        p.get("pts")
                            .ok_or_else(|| bad(KEY, "polygon without 'pts'"))?,
                    )?;
                    Ok(SegPoly { kind, pts })
                })
                .collect()
        }
        // Legacy form: a list of (type, pts) pairs.
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .map(|p| match p.as_seq() {
                Some([t, pts]) => Ok(SegPoly {
                    kind: parse_type(t)?,
                    pts: parse_pts(pts)?,
                }),
                _ => Err(bad(KEY, "legacy polygon is not a (type, points) pair")),
            })
            .collect(),
        _ => Err(bad(
            KEY,
            "expected a dict {'polys': [...]} or a legacy list",
        )),
    }
}

impl FaceMeta {
    /// The face type, defaulting to FULL when the key is absent (as DFL does).
    pub fn face_type_or_default(&self) -> FaceType {
        self.face_type.unwrap_or(FaceType::Full)
    }

    /// The eyebrow expansion, defaulting to 1.0 when absent (as DFL does).
    pub fn eyebrows_expand_mod_or_default(&self) -> f64 {
        self.eyebrows_expand_mod.unwrap_or(1.0)
    }

    /// Reads the metadata dict of a DFL file. Keys whose value is `None` count as absent.
    pub fn from_value(v: &Value) -> Result<FaceMeta, Error> {
        let Value::Dict(items) = v else {
            return Err(Error::Metadata {
                key: "(root)".into(),
                problem: "the metadata pickle is not a dict".into(),
            });
        };
        let mut m = FaceMeta::default();
        for (k, val) in items {
            let Value::Str(key) = k else {
                return Err(bad("(root)", "a metadata key is not a string"));
            };
            if matches!(val, Value::None) && KNOWN_KEYS.contains(&key.as_str()) {
                continue;
            }
            match key.as_str() {
                "face_type" => {
                    let s = val.as_str().ok_or_else(|| bad(key, "expected a string"))?;
                    m.face_type = Some(
                        s.parse()
                            .map_err(|e: dfl_geom::GeomError| bad(key, e.to_string()))?,
                    );
                }
                "landmarks" => m.landmarks = Some(points(key, val)?),
                "source_filename" => {
                    m.source_filename = Some(
                        val.as_str()
                            .ok_or_else(|| bad(key, "expected a string"))?
                            .to_string(),
                    )
                }
                "source_rect" => {
                    let n = numbers(key, val)?;
                    let r: [f64; 4] = n.try_into().map_err(|n: Vec<f64>| {
                        bad(key, format!("expected 4 numbers, got {}", n.len()))
                    })?;
                    if r.iter().any(|v| !v.is_finite()) {
                        return Err(bad(key, "non-finite value"));
                    }
                    // DFL stores integers; float rects (other tools) are truncated like
                    // numpy's astype(int).
                    m.source_rect = Some(r.map(|v| v as i64));
                }
                "source_landmarks" => m.source_landmarks = Some(points(key, val)?),
                "image_to_face_mat" => {
                    let n = numbers(key, val)?;
                    if n.len() != 6 {
                        return Err(bad(
                            key,
                            format!("expected a 2x3 matrix, got {} numbers", n.len()),
                        ));
                    }
                    m.image_to_face_mat = Some(Affine::from_row_slice(&n));
                }
                "seg_ie_polys" => m.seg_ie_polys = Some(polys(val)?),
                "xseg_mask" => {
                    let bytes = match val {
                        Value::Array(a) if a.dtype == DType::U8 => a.data.clone(),
                        Value::Bytes(b) => b.clone(),
                        _ => return Err(bad(key, "expected a uint8 array of encoded image bytes")),
                    };
                    m.xseg_mask = Some(XsegMask::from_encoded(bytes));
                }
                "eyebrows_expand_mod" => {
                    m.eyebrows_expand_mod =
                        Some(val.as_f64().ok_or_else(|| bad(key, "expected a number"))?)
                }
                _ => m.extra.push((key.clone(), val.clone())),
            }
        }
        Ok(m)
    }

    /// The metadata dict with DFL's types: strings, lists of [float, float], numpy int64
    /// `source_rect`, numpy float64 (2, 3) matrix, `{'polys': [{'type': int, 'pts':
    /// float32 (N, 2)}]}`, uint8 (N,) encoded mask, float. Absent keys are omitted (DFL drops
    /// keys whose value is None).
    pub fn to_value(&self) -> Value {
        let s = |k: &str| Value::Str(k.to_string());
        let pts = |p: &[Pt]| {
            Value::List(
                p.iter()
                    .map(|q| Value::List(vec![Value::Float(q[0]), Value::Float(q[1])]))
                    .collect(),
            )
        };
        let mut d = Vec::new();
        if let Some(t) = self.face_type {
            d.push((s("face_type"), s(t.as_str())));
        }
        if let Some(l) = &self.landmarks {
            d.push((s("landmarks"), pts(l)));
        }
        if let Some(f) = &self.source_filename {
            d.push((s("source_filename"), s(f)));
        }
        if let Some(r) = &self.source_rect {
            d.push((
                s("source_rect"),
                Value::Array(NdArray::from_i64(vec![4], r)),
            ));
        }
        if let Some(l) = &self.source_landmarks {
            d.push((s("source_landmarks"), pts(l)));
        }
        if let Some(m) = &self.image_to_face_mat {
            let rows: Vec<f64> = (0..2)
                .flat_map(|r| (0..3).map(move |c| m[(r, c)]))
                .collect();
            d.push((
                s("image_to_face_mat"),
                Value::Array(NdArray::from_f64(vec![2, 3], &rows)),
            ));
        }
        if let Some(polys) = &self.seg_ie_polys {
            // DFL stores None instead of an empty polygon set.
            if !polys.is_empty() {
                let list = polys
                    .iter()
                    .map(|p| {
                        let flat: Vec<f32> = p.pts.iter().flatten().copied().collect();
                        Value::Dict(vec![
                            (s("type"), Value::Int(p.kind.code())),
                            (
                                s("pts"),
                                Value::Array(NdArray::from_f32(vec![p.pts.len(), 2], &flat)),
                            ),
                        ])
                    })
                    .collect();
                d.push((
                    s("seg_ie_polys"),
                    Value::Dict(vec![(s("polys"), Value::List(list))]),
                ));
            }
        }
        if let Some(mask) = &self.xseg_mask {
            let bytes = mask.encoded().to_vec();
            d.push((
                s("xseg_mask"),
                Value::Array(NdArray::from_u8(vec![bytes.len()], bytes)),
            ));
        }
        if let Some(e) = self.eyebrows_expand_mod {
            d.push((s("eyebrows_expand_mod"), Value::Float(e)));
        }
        for (k, v) in &self.extra {
            d.push((s(k), v.clone()));
        }
        Value::Dict(d)
    }
}
