//! A small, safe reader and writer for the Python pickles DFL stores (protocols 2–4).
//!
//! DFL's aligned-face metadata, `faceset.pak` headers and `meta.dat` are pickles of plain
//! containers plus numpy arrays. This module understands exactly those forms and nothing
//! more: it never executes anything. Globals are looked up in a fixed allow-list (numpy's
//! `_reconstruct`/`ndarray`/`dtype`/`scalar` under both `numpy.core` and `numpy._core`, the
//! byte helpers protocol 2 uses, and DFL's two integer enums); any other global is an error.
//! Every length read from the input is checked against the bytes that remain before anything
//! is allocated, array shapes must match their data exactly, and shared references are
//! expanded under a budget, so hostile input costs at most linear memory and time.

use std::collections::HashMap;

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PickleError {
    /// The input ended before the pickle did.
    #[error("pickle truncated at byte {0}")]
    Truncated(usize),
    /// An opcode outside the subset DFL's files use.
    #[error("unsupported pickle opcode 0x{op:02x} at byte {pos}")]
    UnsupportedOpcode {
        /// The opcode byte.
        op: u8,
        /// Its offset.
        pos: usize,
    },
    /// A global outside the allow-list: refused, nothing is imported or run.
    #[error("pickle refers to a foreign global '{module}.{name}' (refused; nothing was run)")]
    ForbiddenGlobal {
        /// Module path.
        module: String,
        /// Attribute name.
        name: String,
    },
    /// A length field claims more bytes than the input has.
    #[error("pickle claims {claimed} bytes at byte {pos} but only {left} remain")]
    LengthTooLarge {
        /// Claimed length.
        claimed: u64,
        /// Bytes left in the input.
        left: usize,
        /// Offset of the claim.
        pos: usize,
    },
    /// A numpy array whose shape × itemsize disagrees with its data.
    #[error("numpy array claims {claimed} bytes (shape {shape:?}, {dtype}) but carries {actual}")]
    ArraySize {
        /// Bytes the shape and dtype imply (saturating).
        claimed: u128,
        /// Bytes present.
        actual: usize,
        /// Claimed shape.
        shape: Vec<u64>,
        /// dtype code.
        dtype: String,
    },
    /// The opcodes do not form a valid pickle (stack underflow, wrong operand types...).
    #[error("malformed pickle at byte {pos}: {what}")]
    Malformed {
        /// Offset of the offending opcode.
        pos: usize,
        /// What was wrong.
        what: String,
    },
    /// Shared references would expand beyond a sane size, or nesting is too deep.
    #[error("pickle expands too much (shared references or nesting deeper than {0})")]
    TooComplex(usize),
}

/// A numpy element type that DFL's files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// `b1`
    Bool,
    /// `i1`
    I8,
    /// `i2`
    I16,
    /// `i4`
    I32,
    /// `i8`
    I64,
    /// `u1`
    U8,
    /// `u2`
    U16,
    /// `u4`
    U32,
    /// `u8`
    U64,
    /// `f4`
    F32,
    /// `f8`
    F64,
}

impl DType {
    const ALL: [DType; 11] = [
        DType::Bool,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::F32,
        DType::F64,
    ];

    /// numpy's type code (`f4`, `u1`, ...).
    pub fn code(self) -> &'static str {
        match self {
            DType::Bool => "b1",
            DType::I8 => "i1",
            DType::I16 => "i2",
            DType::I32 => "i4",
            DType::I64 => "i8",
            DType::U8 => "u1",
            DType::U16 => "u2",
            DType::U32 => "u4",
            DType::U64 => "u8",
            DType::F32 => "f4",
            DType::F64 => "f8",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    fn from_code(code: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.code() == code)
    }
}

/// A numpy array: element type, shape, and the elements in C order, little-endian.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    /// Element type.
    pub dtype: DType,
    /// Shape (empty for a numpy scalar).
    pub shape: Vec<usize>,
    /// `product(shape) * dtype.size()` bytes, C order, little-endian.
    pub data: Vec<u8>,
}

impl NdArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements as f64 (integers converted exactly where they fit).
    pub fn to_f64(&self) -> Vec<f64> {
        let n = self.dtype.size();
        self.data
            .chunks_exact(n)
            .map(|c| match self.dtype {
                DType::Bool => f64::from(c[0] != 0),
                DType::I8 => f64::from(c[0] as i8),
                DType::U8 => f64::from(c[0]),
                DType::I16 => f64::from(i16::from_le_bytes([c[0], c[1]])),
                DType::U16 => f64::from(u16::from_le_bytes([c[0], c[1]])),
                DType::I32 => f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                DType::U32 => f64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                DType::F32 => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                DType::I64 => i64::from_le_bytes(le8(c)) as f64,
                DType::U64 => u64::from_le_bytes(le8(c)) as f64,
                DType::F64 => f64::from_le_bytes(le8(c)),
            })
            .collect()
    }

    /// The elements as i64 when the dtype is an integer or bool type.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let n = self.dtype.size();
        let it = self.data.chunks_exact(n);
        Some(match self.dtype {
            DType::F32 | DType::F64 => return None,
            DType::U64 => it
                .map(|c| i64::try_from(u64::from_le_bytes(le8(c))).ok())
                .collect::<Option<Vec<_>>>()?,
            DType::I64 => it.map(|c| i64::from_le_bytes(le8(c))).collect(),
            _ => self.to_f64().into_iter().map(|v| v as i64).collect(),
        })
    }

    /// The elements as f32 when the dtype is `f4`.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == DType::F32).then(|| {
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    /// An `f4` array of the given shape.
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> NdArray {
        NdArray {
            dtype: DType::F32,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// An `f8` array of the given shape.
    pub fn from_f64(shape: Vec<usize>, values: &[f64]) -> NdArray {
        NdArray {
            dtype: DType::F64,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// An `i8` (int64) array of the given shape.
    pub fn from_i64(shape: Vec<usize>, values: &[i64]) -> NdArray {
        NdArray {
            dtype: DType::I64,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// A `u1` array of the given shape.
    pub fn from_u8(shape: Vec<usize>, values: Vec<u8>) -> NdArray {
        NdArray {
            dtype: DType::U8,
            shape,
            data: values,
        }
    }
}

fn le8(c: &[u8]) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c[..8]);
    b
}

/// DFL's integer enums that appear in `faceset.pak` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnumClass {
    /// `samplelib.Sample.SampleType`
    SampleType,
    /// `facelib.FaceType.FaceType`
    FaceType,
}

impl EnumClass {
    fn path(self) -> (&'static str, &'static str) {
        match self {
            EnumClass::SampleType => ("samplelib.Sample", "SampleType"),
            EnumClass::FaceType => ("facelib.FaceType", "FaceType"),
        }
    }
}

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`
    None,
    /// `bool`
    Bool(bool),
    /// `int` (within i64)
    Int(i64),
    /// `float`
    Float(f64),
    /// `str`
    Str(String),
    /// `bytes`
    Bytes(Vec<u8>),
    /// `list`
    List(Vec<Value>),
    /// `tuple`
    Tuple(Vec<Value>),
    /// `dict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// `numpy.ndarray`
    Array(NdArray),
    /// A numpy scalar (`numpy.float32(1.5)`...), stored as a shape-() array.
    NumpyScalar(NdArray),
    /// A member of one of DFL's integer enums.
    Enum(EnumClass, i64),
}

impl Value {
    /// The value of string key `key` in a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// A number (int, float, bool, numpy scalar, or an enum's integer) as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Bool(b) => Some(f64::from(*b)),
            Value::Enum(_, i) => Some(*i as f64),
            Value::NumpyScalar(a) => a.to_f64().first().copied(),
            _ => None,
        }
    }

    /// An integer (int, bool, integral numpy scalar, or an enum's integer) as i64.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Enum(_, i) => Some(*i),
            Value::NumpyScalar(a) => a.to_i64().and_then(|v| v.first().copied()),
            _ => None,
        }
    }

    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------

/// Most nesting the reader accepts (DFL's deepest structure is 5 levels).
const MAX_DEPTH: usize = 64;

type Id = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    Reconstruct,
    NdArrayClass,
    DTypeClass,
    Scalar,
    CodecsEncode,
    BytesClass,
    Enum(EnumClass),
}

fn lookup_global(module: &str, name: &str) -> Result<Global, PickleError> {
    let g = match (module, name) {
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => Global::Reconstruct,
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => Global::Scalar,
        ("numpy", "ndarray") => Global::NdArrayClass,
        ("numpy", "dtype") => Global::DTypeClass,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("__builtin__" | "builtins", "bytes") => Global::BytesClass,
        ("samplelib.Sample", "SampleType") => Global::Enum(EnumClass::SampleType),
        ("facelib.FaceType", "FaceType") => Global::Enum(EnumClass::FaceType),
        _ => {
            return Err(PickleError::ForbiddenGlobal {
                module: module.to_string(),
                name: name.to_string(),
            });
        }
    };
    Ok(g)
}

/// Items a list or tuple node holds in the node itself; DFL's landmark pairs and numpy's
/// small tuples fit, so they cost no allocation of their own.
const INLINE_IDS: usize = 3;

/// The items of a list or tuple node: a few inline, more on the heap.
#[derive(Debug, Clone)]
enum Ids {
    Inline(u8, [Id; INLINE_IDS]),
    Heap(Vec<Id>),
}

impl Ids {
    fn new() -> Ids {
        Ids::Inline(0, [0; INLINE_IDS])
    }

    fn collect(items: impl ExactSizeIterator<Item = Id>) -> Ids {
        let mut ids = Ids::new();
        ids.extend(items);
        ids
    }

    fn as_slice(&self) -> &[Id] {
        match self {
            Ids::Inline(n, a) => &a[..usize::from(*n)],
            Ids::Heap(v) => v,
        }
    }

    fn extend(&mut self, items: impl ExactSizeIterator<Item = Id>) {
        match self {
            Ids::Inline(n, a) if usize::from(*n) + items.len() <= INLINE_IDS => {
                for i in items {
                    a[usize::from(*n)] = i;
                    *n += 1;
                }
            }
            Ids::Inline(n, a) => {
                let mut v = Vec::with_capacity(usize::from(*n) + items.len());
                v.extend_from_slice(&a[..usize::from(*n)]);
                v.extend(items);
                *self = Ids::Heap(v);
            }
            Ids::Heap(v) => v.extend(items),
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(Value),
    List(Ids),
    Tuple(Ids),
    Dict(Vec<(Id, Id)>),
    Global(Global),
    /// `numpy.dtype(code, False, True)` before/after its BUILD; `big_endian` from the state.
    DType {
        dtype: DType,
        big_endian: bool,
    },
    /// `_reconstruct(ndarray, (0,), b'b')`, waiting for its BUILD.
    ArrayStub,
}

/// The pickle memo: dense for the small sequential keys picklers use, a map for the rest
/// (a hostile key costs no memory beyond its entry).
struct Memo {
    dense: Vec<Id>,
    sparse: HashMap<u64, Id>,
    count: usize,
    dense_limit: usize,
}

const UNSET: Id = Id::MAX;

impl Memo {
    fn new(dense_limit: usize) -> Memo {
        Memo {
            dense: Vec::new(),
            sparse: HashMap::new(),
            count: 0,
            dense_limit,
        }
    }

    fn insert(&mut self, k: u64, id: Id) {
        if k < self.dense_limit as u64 {
            let k = k as usize;
            if k >= self.dense.len() {
                self.dense.resize(k + 1, UNSET);
            }
            if self.dense[k] == UNSET {
                self.count += 1;
            }
            self.dense[k] = id;
        } else if self.sparse.insert(k, id).is_none() {
            self.count += 1;
        }
    }

    fn get(&self, k: u64) -> Option<Id> {
        if k < self.dense_limit as u64 {
            self.dense
                .get(k as usize)
                .copied()
                .filter(|&id| id != UNSET)
        } else {
            self.sparse.get(&k).copied()
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: Memo,
    /// How many containers hold each node (saturating at 2); filled at STOP.
    refs: Vec<u8>,
    /// Whether lists and tuples of numbers come back as float64 arrays ([`loads_compact`]).
    compact: bool,
}

impl<'a> Reader<'a> {
    fn malformed(&self, at: usize, what: impl Into<String>) -> PickleError {
        PickleError::Malformed {
            pos: at,
            what: what.into(),
        }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], PickleError> {
        let left = self.data.len() - self.pos;
        if n > left as u64 {
            return Err(if n > 16 {
                PickleError::LengthTooLarge {
                    claimed: n,
                    left,
                    pos: self.pos,
                }
            } else {
                PickleError::Truncated(self.data.len())
            });
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(le8(self.take(8)?)))
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated(self.data.len()))?;
        let s = std::str::from_utf8(&rest[..n])
            .map_err(|_| self.malformed(self.pos, "non-UTF-8 text"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn push(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
    }

    fn leaf(&mut self, v: Value) {
        self.push(Node::Leaf(v));
    }

    fn pop(&mut self, at: usize) -> Result<Id, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.malformed(at, "pop across a MARK"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.malformed(at, "stack underflow"))
    }

    fn top(&self, at: usize) -> Result<Id, PickleError> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.malformed(at, "stack underflow"))
    }

    fn take_mark(&mut self, at: usize) -> Result<usize, PickleError> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed(at, "no MARK"))?;
        if m > self.stack.len() {
            return Err(self.malformed(at, "MARK beyond stack"));
        }
        Ok(m)
    }

    /// The object just below a MARK at stack position `m` (the list or dict APPENDS and
    /// SETITEMS extend); it must not lie below an enclosing MARK.
    fn below(&self, m: usize, at: usize) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if m == 0 || m - 1 < floor {
            return Err(self.malformed(at, "stack underflow"));
        }
        Ok(self.stack[m - 1])
    }

    fn pop_mark(&mut self, at: usize) -> Result<Ids, PickleError> {
        let m = self.take_mark(at)?;
        Ok(Ids::collect(self.stack.drain(m..)))
    }

    fn text(&mut self, n: u64) -> Result<(), PickleError> {
        let at = self.pos;
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| self.malformed(at, "string is not UTF-8"))?;
        self.leaf(Value::Str(s.to_string()));
        Ok(())
    }

    fn bytes(&mut self, n: u64) -> Result<(), PickleError> {
        let b = self.take(n)?.to_vec();
        self.leaf(Value::Bytes(b));
        Ok(())
    }

    fn str_of(&self, id: Id, at: usize) -> Result<&str, PickleError> {
        match &self.nodes[id] {
            Node::Leaf(Value::Str(s)) => Ok(s),
            _ => Err(self.malformed(at, "expected a string")),
        }
    }

    fn tuple_of(&self, id: Id, at: usize) -> Result<Ids, PickleError> {
        match &self.nodes[id] {
            Node::Tuple(items) => Ok(items.clone()),
            _ => Err(self.malformed(at, "expected a tuple")),
        }
    }

    fn int_of(&self, id: Id, at: usize) -> Result<i64, PickleError> {
        match &self.nodes[id] {
            Node::Leaf(Value::Int(i)) => Ok(*i),
            _ => Err(self.malformed(at, "expected an int")),
        }
    }

    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.malformed(at, format!("protocol {p}")));
                    }
                }
                0x95 => {
                    // FRAME: a length hint; the frame must fit in what remains.
                    let n = self.u64()?;
                    let left = self.data.len() - self.pos;
                    if n > left as u64 {
                        return Err(PickleError::LengthTooLarge {
                            claimed: n,
                            left,
                            pos: at,
                        });
                    }
                }
                b'.' => {
                    // STOP
                    let id = self.pop(at)?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return Err(self.malformed(at, "items left on the stack at STOP"));
                    }
                    self.count_refs(id);
                    let mut budget = 16 * self.data.len() + 1024;
                    return self.materialize(id, false, 0, &mut budget);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let id = self.top(at)?;
                    self.stack.push(id);
                }
                b'N' => self.leaf(Value::None),
                0x88 => self.leaf(Value::Bool(true)),
                0x89 => self.leaf(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.leaf(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.leaf(Value::Int(i64::from(v)));
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.leaf(Value::Int(i64::from(v)));
                }
                0x8a | 0x8b => {
                    // LONG1 / LONG4: little-endian two's complement.
                    let n = if op == 0x8a {
                        u64::from(self.u8()?)
                    } else {
                        u64::from(self.u32()?)
                    };
                    let b = self.take(n)?;
                    if b.len() > 8 {
                        return Err(self.malformed(at, "integer wider than 64 bits"));
                    }
                    let mut v: i64 = 0;
                    for (i, &byte) in b.iter().enumerate() {
                        v |= i64::from(byte) << (8 * i);
                    }
                    if let Some(&last) = b.last()
                        && b.len() < 8
                        && last & 0x80 != 0
                    {
                        v -= 1i64 << (8 * b.len());
                    }
                    self.leaf(Value::Int(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    self.leaf(Value::Float(f64::from_be_bytes(le8(b))));
                }
                0x8c => {
                    let n = u64::from(self.u8()?);
                    self.text(n)?;
                }
                b'X' => {
                    let n = u64::from(self.u32()?);
                    self.text(n)?;
                }
                0x8d => {
                    let n = self.u64()?;
                    self.text(n)?;
                }
                b'C' => {
                    let n = u64::from(self.u8()?);
                    self.bytes(n)?;
                }
                b'B' => {
                    let n = u64::from(self.u32()?);
                    self.bytes(n)?;
                }
                0x8e => {
                    let n = self.u64()?;
                    self.bytes(n)?;
                }
                b']' => self.push(Node::List(Ids::new())),
                b')' => self.push(Node::Tuple(Ids::new())),
                b'}' => self.push(Node::Dict(Vec::new())),
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::List(items));
                }
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return Err(self.malformed(at, "stack underflow"));
                    }
                    let items = Ids::collect(self.stack.drain(self.stack.len() - n..));
                    self.push(Node::Tuple(items));
                }
                b'd' => {
                    let items = self.pop_mark(at)?;
                    let pairs = self.pairs(items.as_slice(), at)?;
                    self.push(Node::Dict(pairs));
                }
                b'a' => {
                    let v = self.pop(at)?;
                    let list = self.top(at)?;
                    self.extend_list(list, v, at)?;
                }
                b'e' => {
                    let m = self.take_mark(at)?;
                    let list = self.below(m, at)?;
                    match &mut self.nodes[list] {
                        Node::List(v) => v.extend(self.stack.drain(m..)),
                        _ => return Err(self.malformed(at, "APPENDS to a non-list")),
                    }
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    let d = self.top(at)?;
                    self.extend_dict(d, vec![(k, v)], at)?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    let pairs = self.pairs(items.as_slice(), at)?;
                    let d = self.top(at)?;
                    self.extend_dict(d, pairs, at)?;
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    let g = lookup_global(&module, &name)?;
                    self.push(Node::Global(g));
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let g = lookup_global(self.str_of(module, at)?, self.str_of(name, at)?)?;
                    self.push(Node::Global(g));
                }
                b'R' => {
                    let args = self.pop(at)?;
                    let func = self.pop(at)?;
                    let node = self.reduce(func, args, at)?;
                    self.push(node);
                }
                b'b' => {
                    let state = self.pop(at)?;
                    let obj = self.top(at)?;
                    self.build(obj, state, at)?;
                }
                b'q' => {
                    let k = u64::from(self.u8()?);
                    self.put(k, at)?;
                }
                b'r' => {
                    let k = u64::from(self.u32()?);
                    self.put(k, at)?;
                }
                0x94 => {
                    let k = self.memo.count as u64;
                    self.put(k, at)?;
                }
                b'h' => {
                    let k = u64::from(self.u8()?);
                    self.get(k, at)?;
                }
                b'j' => {
                    let k = u64::from(self.u32()?);
                    self.get(k, at)?;
                }
                _ => return Err(PickleError::UnsupportedOpcode { op, pos: at }),
            }
        }
    }

    fn put(&mut self, k: u64, at: usize) -> Result<(), PickleError> {
        let id = self.top(at)?;
        self.memo.insert(k, id);
        Ok(())
    }

    fn get(&mut self, k: u64, at: usize) -> Result<(), PickleError> {
        let id = self
            .memo
            .get(k)
            .ok_or_else(|| self.malformed(at, format!("memo key {k} not set")))?;
        self.stack.push(id);
        Ok(())
    }

    fn pairs(&self, items: &[Id], at: usize) -> Result<Vec<(Id, Id)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed(at, "odd number of dict items"));
        }
        Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }

    fn extend_list(&mut self, list: Id, item: Id, at: usize) -> Result<(), PickleError> {
        match &mut self.nodes[list] {
            Node::List(v) => {
                v.extend(std::iter::once(item));
                Ok(())
            }
            _ => Err(self.malformed(at, "APPEND to a non-list")),
        }
    }

    fn extend_dict(&mut self, d: Id, pairs: Vec<(Id, Id)>, at: usize) -> Result<(), PickleError> {
        match &mut self.nodes[d] {
            Node::Dict(v) => {
                v.extend(pairs);
                Ok(())
            }
            _ => Err(self.malformed(at, "SETITEM on a non-dict")),
        }
    }

    fn reduce(&self, func: Id, args: Id, at: usize) -> Result<Node, PickleError> {
        let Node::Global(g) = self.nodes[func] else {
            return Err(self.malformed(at, "REDUCE of a non-callable"));
        };
        let args = self.tuple_of(args, at)?;
        let args = args.as_slice();
        match g {
            Global::Reconstruct => {
                // _reconstruct(numpy.ndarray, (0,), b'b')
                match args {
                    [cls, _, _]
                        if matches!(self.nodes[*cls], Node::Global(Global::NdArrayClass)) =>
                    {
                        Ok(Node::ArrayStub)
                    }
                    _ => Err(self.malformed(at, "_reconstruct of something other than ndarray")),
                }
            }
            Global::DTypeClass => {
                let [code, ..] = args else {
                    return Err(self.malformed(at, "numpy.dtype without arguments"));
                };
                let code = self.str_of(*code, at)?;
                let dtype = DType::from_code(code).ok_or_else(|| {
                    self.malformed(at, format!("unsupported numpy dtype '{code}'"))
                })?;
                Ok(Node::DType {
                    dtype,
                    big_endian: false,
                })
            }
            Global::Scalar => {
                // scalar(dtype, bytes)
                let [dt, raw] = args else {
                    return Err(self.malformed(at, "numpy scalar needs (dtype, bytes)"));
                };
                let Node::DType { dtype, big_endian } = self.nodes[*dt] else {
                    return Err(self.malformed(at, "numpy scalar without a dtype"));
                };
                let raw = match &self.nodes[*raw] {
                    Node::Leaf(Value::Bytes(b)) => b.clone(),
                    _ => return Err(self.malformed(at, "numpy scalar data is not bytes")),
                };
                let arr = make_array(dtype, big_endian, Vec::new(), raw)?;
                Ok(Node::Leaf(Value::NumpyScalar(arr)))
            }
            Global::CodecsEncode => {
                // Protocol 2 spelling of bytes: _codecs.encode(text, 'latin1').
                let [text, enc] = args else {
                    return Err(self.malformed(at, "_codecs.encode needs 2 arguments"));
                };
                let enc = self.str_of(*enc, at)?;
                if enc != "latin1" && enc != "latin-1" {
                    return Err(self.malformed(at, format!("_codecs.encode to '{enc}'")));
                }
                let bytes = self
                    .str_of(*text, at)?
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).ok())
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| self.malformed(at, "latin1 text outside 0..=255"))?;
                Ok(Node::Leaf(Value::Bytes(bytes)))
            }
            Global::BytesClass => {
                if args.is_empty() {
                    Ok(Node::Leaf(Value::Bytes(Vec::new())))
                } else {
                    Err(self.malformed(at, "bytes() with arguments"))
                }
            }
            Global::Enum(class) => {
                let [v] = args else {
                    return Err(self.malformed(at, "enum needs one integer"));
                };
                Ok(Node::Leaf(Value::Enum(class, self.int_of(*v, at)?)))
            }
            Global::NdArrayClass => Err(self.malformed(at, "direct ndarray construction")),
        }
    }

    fn build(&mut self, obj: Id, state: Id, at: usize) -> Result<(), PickleError> {
        let st = self.tuple_of(state, at)?;
        let st = st.as_slice();
        match self.nodes[obj] {
            Node::DType { dtype, .. } => {
                // (version, byteorder, subarray, names, fields, elsize, alignment, flags[, meta])
                if st.len() < 8 {
                    return Err(self.malformed(at, "dtype state too short"));
                }
                let order = self.str_of(st[1], at)?;
                let big_endian = match order {
                    "<" | "|" | "=" => false,
                    ">" => true,
                    _ => return Err(self.malformed(at, format!("dtype byte order '{order}'"))),
                };
                for &i in &st[2..5] {
                    if !matches!(self.nodes[i], Node::Leaf(Value::None)) {
                        return Err(self.malformed(at, "structured or sub-array dtype"));
                    }
                }
                self.nodes[obj] = Node::DType { dtype, big_endian };
                Ok(())
            }
            Node::ArrayStub => {
                // (version, shape, dtype, is_fortran, raw data)
                let [_, shape, dt, fortran, raw] = st else {
                    return Err(self.malformed(at, "ndarray state must have 5 items"));
                };
                let shape = self.tuple_of(*shape, at)?;
                let mut dims = Vec::with_capacity(shape.as_slice().len().min(32));
                for &s in shape.as_slice() {
                    let d = self.int_of(s, at)?;
                    dims.push(
                        u64::try_from(d).map_err(|_| self.malformed(at, "negative dimension"))?,
                    );
                }
                let Node::DType { dtype, big_endian } = self.nodes[*dt] else {
                    return Err(self.malformed(at, "ndarray state without a dtype"));
                };
                let fortran = match self.nodes[*fortran] {
                    Node::Leaf(Value::Bool(b)) => b,
                    Node::Leaf(Value::Int(i)) => i != 0,
                    _ => return Err(self.malformed(at, "ndarray fortran flag")),
                };
                let raw = match &self.nodes[*raw] {
                    Node::Leaf(Value::Bytes(b)) => b.clone(),
                    Node::Leaf(Value::List(_)) | Node::List(_) => {
                        return Err(self.malformed(at, "object arrays are not supported"));
                    }
                    _ => return Err(self.malformed(at, "ndarray data is not bytes")),
                };
                let elems: u128 = dims
                    .iter()
                    .map(|&d| u128::from(d))
                    .fold(1u128, |a, d| a.saturating_mul(d));
                let claimed = elems.saturating_mul(dtype.size() as u128);
                if claimed != raw.len() as u128 {
                    return Err(PickleError::ArraySize {
                        claimed,
                        actual: raw.len(),
                        shape: dims,
                        dtype: dtype.code().to_string(),
                    });
                }
                let dims: Vec<usize> = dims.into_iter().map(|d| d as usize).collect();
                let mut arr = make_array(dtype, big_endian, dims, raw)?;
                if fortran && arr.shape.len() > 1 {
                    arr = fortran_to_c(arr);
                }
                self.nodes[obj] = Node::Leaf(Value::Array(arr));
                Ok(())
            }
            _ => Err(self.malformed(at, "BUILD on an object that takes no state")),
        }
    }

    fn count_refs(&mut self, root: Id) {
        let mut refs = vec![0u8; self.nodes.len()];
        let mut bump = |i: Id| refs[i] = refs[i].saturating_add(1).min(2);
        bump(root);
        for n in &self.nodes {
            match n {
                Node::List(items) | Node::Tuple(items) => {
                    items.as_slice().iter().for_each(|&i| bump(i))
                }
                Node::Dict(pairs) => pairs.iter().for_each(|&(k, v)| {
                    bump(k);
                    bump(v);
                }),
                _ => {}
            }
        }
        self.refs = refs;
    }

    /// Builds the value of node `id`. Nodes held by one container are moved out of the
    /// arena; shared ones (and everything below them) are copied, under `budget`.
    fn materialize(
        &mut self,
        id: Id,
        shared: bool,
        depth: usize,
        budget: &mut usize,
    ) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH || *budget == 0 {
            return Err(PickleError::TooComplex(MAX_DEPTH));
        }
        *budget -= 1;
        let at = self.pos;
        let shared = shared || self.refs.get(id).copied().unwrap_or(2) > 1;
        let node = if shared {
            self.nodes[id].clone()
        } else {
            std::mem::replace(&mut self.nodes[id], Node::Leaf(Value::None))
        };
        if let (true, Node::List(items) | Node::Tuple(items)) = (self.compact, &node)
            && let Some(a) = self.numeric_array(items.as_slice(), budget)
        {
            return Ok(Value::Array(a));
        }
        Ok(match node {
            Node::Leaf(v) => {
                if shared {
                    let cost = match &v {
                        Value::Str(s) => s.len() / 16,
                        Value::Bytes(b) => b.len() / 16,
                        Value::Array(a) | Value::NumpyScalar(a) => a.data.len() / 16,
                        _ => 0,
                    };
                    *budget = budget
                        .checked_sub(cost)
                        .ok_or(PickleError::TooComplex(MAX_DEPTH))?;
                }
                v
            }
            Node::List(items) => {
                Value::List(self.materialize_all(items.as_slice(), shared, depth, budget)?)
            }
            Node::Tuple(items) => {
                Value::Tuple(self.materialize_all(items.as_slice(), shared, depth, budget)?)
            }
            Node::Dict(pairs) => {
                let mut out: Vec<(Value, Value)> = Vec::with_capacity(pairs.len());
                let mut str_index: HashMap<String, usize> = HashMap::new();
                for (k, v) in pairs {
                    let k = self.materialize(k, shared, depth + 1, budget)?;
                    let v = self.materialize(v, shared, depth + 1, budget)?;
                    // Python dicts keep the last value of a repeated key, at its first position.
                    if let Value::Str(s) = &k {
                        if out.len() < 8 {
                            if let Some(slot) = out.iter_mut().find(|(x, _)| x == &k) {
                                slot.1 = v;
                                continue;
                            }
                        } else {
                            if str_index.is_empty() {
                                for (i, (x, _)) in out.iter().enumerate() {
                                    if let Value::Str(xs) = x {
                                        str_index.entry(xs.clone()).or_insert(i);
                                    }
                                }
                            }
                            if let Some(&i) = str_index.get(s) {
                                out[i].1 = v;
                                continue;
                            }
                            str_index.insert(s.clone(), out.len());
                        }
                    }
                    out.push((k, v));
                }
                Value::Dict(out)
            }
            Node::Global(_) => return Err(self.malformed(at, "a bare global is not a value")),
            Node::DType { .. } => return Err(self.malformed(at, "a bare dtype is not a value")),
            Node::ArrayStub => return Err(self.malformed(at, "ndarray without state")),
        })
    }

    /// The numbers of a non-empty list of ints and floats, or of a list of equally long such
    /// lists, as a float64 array of shape (n,) or (n, m); `None` for anything else (or when
    /// the budget cannot pay one unit per number).
    fn numeric_array(&self, items: &[Id], budget: &mut usize) -> Option<NdArray> {
        let number = |id: Id| match self.nodes[id] {
            Node::Leaf(Value::Float(f)) => Some(f),
            Node::Leaf(Value::Int(i)) => Some(i as f64),
            _ => None,
        };
        let row = |id: Id| match &self.nodes[id] {
            Node::List(r) | Node::Tuple(r) => Some(r.as_slice()),
            _ => None,
        };
        let first = *items.first()?;
        let width = match row(first) {
            Some(r) if !r.is_empty() => r.len(),
            Some(_) => return None,
            None => 0,
        };
        // Bounded by the budget before scanning (rows shared through the memo cannot make
        // the check quadratic); every cell is checked before anything is allocated.
        let cells = items.len().saturating_mul(width.max(1));
        if *budget < cells {
            return None;
        }
        let numeric = if width == 0 {
            items.iter().all(|&i| number(i).is_some())
        } else {
            items.iter().all(|&i| {
                row(i).is_some_and(|r| r.len() == width && r.iter().all(|&j| number(j).is_some()))
            })
        };
        if !numeric {
            return None;
        }
        *budget -= cells;
        let mut data = Vec::with_capacity(cells * 8);
        let mut push = |id: Id| data.extend_from_slice(&number(id).unwrap_or(0.0).to_le_bytes());
        let shape = if width == 0 {
            items.iter().for_each(|&i| push(i));
            vec![items.len()]
        } else {
            for &i in items {
                row(i).unwrap_or(&[]).iter().for_each(|&j| push(j));
            }
            vec![items.len(), width]
        };
        Some(NdArray {
            dtype: DType::F64,
            shape,
            data,
        })
    }

    fn materialize_all(
        &mut self,
        items: &[Id],
        shared: bool,
        depth: usize,
        budget: &mut usize,
    ) -> Result<Vec<Value>, PickleError> {
        let mut out = Vec::with_capacity(items.len());
        for &i in items {
            // Numbers and other scalars (most of DFL's metadata: landmark coordinates) are
            // copied straight out of the arena; they cost no budget beyond their node.
            let scalar = match &self.nodes[i] {
                Node::Leaf(
                    v @ (Value::None | Value::Bool(_) | Value::Int(_) | Value::Float(_)),
                ) => Some(v.clone()),
                _ => None,
            };
            match scalar {
                Some(v) if depth < MAX_DEPTH && *budget > 0 => {
                    *budget -= 1;
                    out.push(v);
                }
                _ => out.push(self.materialize(i, shared, depth + 1, budget)?),
            }
        }
        Ok(out)
    }
}

fn make_array(
    dtype: DType,
    big_endian: bool,
    shape: Vec<usize>,
    mut data: Vec<u8>,
) -> Result<NdArray, PickleError> {
    let n = dtype.size();
    if shape.is_empty() && data.len() != n {
        return Err(PickleError::ArraySize {
            claimed: n as u128,
            actual: data.len(),
            shape: Vec::new(),
            dtype: dtype.code().to_string(),
        });
    }
    if big_endian && n > 1 {
        for c in data.chunks_exact_mut(n) {
            c.reverse();
        }
    }
    Ok(NdArray { dtype, shape, data })
}

/// Reorders a Fortran-order (column-major) array's elements into C order.
fn fortran_to_c(arr: NdArray) -> NdArray {
    let n = arr.dtype.size();
    let count = arr.len();
    let dims = &arr.shape;
    let mut out = vec![0u8; arr.data.len()];
    // Strides of the Fortran layout, in elements.
    let mut f_strides = vec![1usize; dims.len()];
    for i in 1..dims.len() {
        f_strides[i] = f_strides[i - 1] * dims[i - 1];
    }
    let mut idx = vec![0usize; dims.len()];
    for c_pos in 0..count {
        let f_pos: usize = idx.iter().zip(&f_strides).map(|(i, s)| i * s).sum();
        out[c_pos * n..(c_pos + 1) * n].copy_from_slice(&arr.data[f_pos * n..(f_pos + 1) * n]);
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    NdArray { data: out, ..arr }
}

/// Decodes a pickle. Never executes anything; see the module documentation for what is
/// accepted.
pub fn loads(data: &[u8]) -> Result<Value, PickleError> {
    reader(data, false).run()
}

/// Like [`loads`], but every non-empty list or tuple of ints and floats, and every list of
/// equally long such lists, comes back as a float64 [`Value::Array`] of shape (n,) or
/// (n, m). For scanning many files (a training faceset's landmarks) with one allocation
/// per list instead of one per point; not for values that are written back.
pub fn loads_compact(data: &[u8]) -> Result<Value, PickleError> {
    reader(data, true).run()
}

fn reader(data: &[u8], compact: bool) -> Reader<'_> {
    Reader {
        data,
        pos: 0,
        nodes: Vec::with_capacity(data.len() / 6),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::new(data.len()),
        refs: Vec::new(),
        compact,
    }
}

// ---------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------

/// Where numpy globals are written. `numpy.core` is what DFL's own numpy (1.x) writes and
/// what every numpy version (1.x and 2.x) can load; `numpy._core` only loads on numpy ≥ 1.26.
const NUMPY_MULTIARRAY: &str = "numpy.core.multiarray";

/// Encodes `value` as a protocol-4 pickle that Python's `pickle.loads` (3.4+) reads, using the
/// same numpy forms numpy itself emits (`_reconstruct` + `__setstate__`, `dtype`, `scalar`).
pub fn dumps(value: &Value) -> Vec<u8> {
    let mut out = vec![0x80, 4];
    write_value(&mut out, value);
    out.push(b'.');
    out
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if b.len() < 256 {
        out.push(0x8c);
        out.push(b.len() as u8);
    } else {
        out.push(b'X');
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(b);
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    if b.len() < 256 {
        out.push(b'C');
        out.push(b.len() as u8);
    } else {
        out.push(b'B');
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(b);
}

fn write_int(out: &mut Vec<u8>, v: i64) {
    if (0..256).contains(&v) {
        out.push(b'K');
        out.push(v as u8);
    } else if (0..65536).contains(&v) {
        out.push(b'M');
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if let Ok(v32) = i32::try_from(v) {
        out.push(b'J');
        out.extend_from_slice(&v32.to_le_bytes());
    } else {
        // LONG1 with the shortest two's complement encoding.
        let bytes = v.to_le_bytes();
        let mut n = 8;
        while n > 1 {
            let top = bytes[n - 1];
            let next_sign = bytes[n - 2] & 0x80;
            if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
                n -= 1;
            } else {
                break;
            }
        }
        out.push(0x8a);
        out.push(n as u8);
        out.extend_from_slice(&bytes[..n]);
    }
}

fn write_global(out: &mut Vec<u8>, module: &str, name: &str) {
    write_str(out, module);
    write_str(out, name);
    out.push(0x93);
}

fn write_dtype(out: &mut Vec<u8>, dtype: DType) {
    write_global(out, "numpy", "dtype");
    write_str(out, dtype.code());
    out.push(0x89); // False
    out.push(0x88); // True
    out.push(0x87); // TUPLE3
    out.push(b'R');
    // State: (3, byteorder, None, None, None, -1, -1, 0)
    out.push(b'(');
    write_int(out, 3);
    write_str(out, if dtype.size() == 1 { "|" } else { "<" });
    out.extend_from_slice(b"NNN");
    write_int(out, -1);
    write_int(out, -1);
    write_int(out, 0);
    out.push(b't');
    out.push(b'b');
}

fn write_array(out: &mut Vec<u8>, a: &NdArray) {
    write_global(out, NUMPY_MULTIARRAY, "_reconstruct");
    write_global(out, "numpy", "ndarray");
    write_int(out, 0);
    out.push(0x85); // (0,)
    write_bytes(out, b"b");
    out.push(0x87);
    out.push(b'R');
    out.push(b'(');
    write_int(out, 1);
    write_tuple_of_ints(out, &a.shape);
    write_dtype(out, a.dtype);
    out.push(0x89); // not Fortran
    write_bytes(out, &a.data);
    out.push(b't');
    out.push(b'b');
}

fn write_tuple_of_ints(out: &mut Vec<u8>, v: &[usize]) {
    let items: Vec<Value> = v.iter().map(|&d| Value::Int(d as i64)).collect();
    write_value(out, &Value::Tuple(items));
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::None => out.push(b'N'),
        Value::Bool(true) => out.push(0x88),
        Value::Bool(false) => out.push(0x89),
        Value::Int(i) => write_int(out, *i),
        Value::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => write_str(out, s),
        Value::Bytes(b) => write_bytes(out, b),
        Value::List(items) => {
            out.push(b']');
            if !items.is_empty() {
                out.push(b'(');
                for it in items {
                    write_value(out, it);
                }
                out.push(b'e');
            }
        }
        Value::Tuple(items) => match items.len() {
            0 => out.push(b')'),
            n @ 1..=3 => {
                for it in items {
                    write_value(out, it);
                }
                out.push(0x84 + n as u8);
            }
            _ => {
                out.push(b'(');
                for it in items {
                    write_value(out, it);
                }
                out.push(b't');
            }
        },
        Value::Dict(items) => {
            out.push(b'}');
            if !items.is_empty() {
                out.push(b'(');
                for (k, v) in items {
                    write_value(out, k);
                    write_value(out, v);
                }
                out.push(b'u');
            }
        }
        Value::Array(a) => write_array(out, a),
        Value::NumpyScalar(a) => {
            write_global(out, NUMPY_MULTIARRAY, "scalar");
            write_dtype(out, a.dtype);
            write_bytes(out, &a.data);
            out.push(0x86);
            out.push(b'R');
        }
        Value::Enum(class, v) => {
            let (m, n) = class.path();
            write_global(out, m, n);
            write_int(out, *v);
            out.push(0x85);
            out.push(b'R');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        Value::Dict(vec![
            (Value::Str("a".into()), Value::Int(-5)),
            (Value::Str("big".into()), Value::Int(1 << 40)),
            (Value::Str("neg".into()), Value::Int(-(1 << 40))),
            (Value::Str("f".into()), Value::Float(1.25)),
            (
                Value::Str("t".into()),
                Value::Tuple(vec![Value::None, Value::Bool(true)]),
            ),
            (
                Value::Str("l".into()),
                Value::List(vec![
                    Value::Str("é".repeat(200)),
                    Value::Bytes(vec![7; 300]),
                ]),
            ),
            (
                Value::Str("arr".into()),
                Value::Array(NdArray::from_f32(vec![2, 2], &[1.0, 2.0, 3.0, 4.0])),
            ),
            (
                Value::Str("s".into()),
                Value::NumpyScalar(NdArray::from_f64(vec![], &[0.5])),
            ),
            (Value::Str("e".into()), Value::Enum(EnumClass::FaceType, 10)),
        ])
    }

    #[test]
    fn round_trips_every_kind() {
        let v = sample();
        assert_eq!(loads(&dumps(&v)).unwrap(), v);
        for i in [0, 255, 256, 65535, 65536, -1, i64::MIN, i64::MAX, -129, 128] {
            assert_eq!(loads(&dumps(&Value::Int(i))).unwrap(), Value::Int(i), "{i}");
        }
    }

    #[test]
    fn memo_shares_mutable_lists_like_python() {
        // EMPTY_LIST, MEMOIZE, BINGET 0 (same list), K 1, APPEND, POP, STOP: the list the
        // memo shares has the appended item, as in Python.
        let q = [0x80, 4, b']', 0x94, b'h', 0, b'K', 1, b'a', b'0', b'.'];
        assert_eq!(loads(&q).unwrap(), Value::List(vec![Value::Int(1)]));
    }

    #[test]
    fn sparse_memo_keys_cost_no_memory() {
        // LONG_BINPUT with key 4e9, then LONG_BINGET of it: a tuple of the same int twice.
        let p = b"\x80\x04K\x07r\x00\x28\x6b\xeej\x00\x28\x6b\xee\x86.";
        assert_eq!(
            loads(p).unwrap(),
            Value::Tuple(vec![Value::Int(7), Value::Int(7)])
        );
        assert!(
            loads(b"\x80\x04j\x00\x00\x00\x01.").is_err(),
            "unset memo key"
        );
    }

    #[test]
    fn refuses_foreign_globals_without_running_them() {
        let p = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x04echo\x85R.";
        assert_eq!(
            loads(p),
            Err(PickleError::ForbiddenGlobal {
                module: "os".into(),
                name: "system".into()
            })
        );
        let p2 = b"cbuiltins\neval\n(S'1'\ntR.";
        assert!(matches!(
            loads(p2),
            Err(PickleError::ForbiddenGlobal { .. })
        ));
    }

    #[test]
    fn refuses_huge_claims_without_allocating() {
        // BINBYTES8 claiming 10 GB.
        let mut p = vec![0x80, 4, 0x8e];
        p.extend_from_slice(&10_000_000_000u64.to_le_bytes());
        p.push(b'.');
        assert!(matches!(loads(&p), Err(PickleError::LengthTooLarge { .. })));
        // An array whose shape claims 10 GB of float64 with 8 bytes of data.
        let mut a = NdArray::from_f64(vec![1], &[1.0]);
        a.shape = vec![50_000, 25_000];
        let bytes = dumps(&Value::Array(a));
        assert!(matches!(
            loads(&bytes),
            Err(PickleError::ArraySize {
                claimed: 10_000_000_000,
                ..
            })
        ));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let good = dumps(&sample());
        for cut in 0..good.len() {
            assert!(loads(&good[..cut]).is_err(), "prefix {cut}");
        }
        assert!(loads(b"").is_err());
        assert!(loads(b"\x80\x04e.").is_err());
        assert!(loads(b"\x80\x04N\x85\x85\x85\x85.").is_ok());
        assert!(loads(b"\x80\x04(.").is_err());
    }

    #[test]
    fn shared_references_cannot_blow_up() {
        // l0 = []; l1 = [l0, l0]; l2 = [l1, l1]; ... 60 levels -> 2^60 leaves if expanded.
        let mut p = vec![0x80, 4, b']', b'q', 0, b'0'];
        for i in 0..60u8 {
            p.extend_from_slice(&[b'h', i, b'h', i, 0x86, b'q', i + 1, b'0']);
        }
        p.extend_from_slice(&[b'h', 60, b'.']);
        assert!(matches!(loads(&p), Err(PickleError::TooComplex(_))));
    }

    #[test]
    fn compact_reads_number_lists_as_arrays_and_nothing_else() {
        let key = |k: &str| Value::Str(k.into());
        let pts: Vec<Value> = (0..68)
            .map(|i| {
                Value::List(vec![
                    Value::Float(f64::from(i) + 0.5),
                    Value::Int(-i64::from(i)),
                ])
            })
            .collect();
        let ragged = vec![
            Value::List(vec![Value::Float(1.0)]),
            Value::List(Vec::new()),
        ];
        let v = Value::Dict(vec![
            (key("landmarks"), Value::List(pts)),
            (
                key("rect"),
                Value::Tuple(vec![Value::Int(1), Value::Int(-2)]),
            ),
            (key("ragged"), Value::List(ragged)),
            (key("mixed"), Value::List(vec![Value::Float(1.0), key("a")])),
            (key("pair"), Value::Tuple(vec![Value::Int(1), key("b")])),
            (key("empty"), Value::List(Vec::new())),
        ]);
        let p = dumps(&v);
        assert_eq!(loads(&p).unwrap(), v);
        let c = loads_compact(&p).unwrap();
        let Some(Value::Array(lm)) = c.get("landmarks") else {
            panic!("landmarks: {:?}", c.get("landmarks"))
        };
        assert_eq!((lm.dtype, lm.shape.clone()), (DType::F64, vec![68, 2]));
        let want: Vec<f64> = (0..68)
            .flat_map(|i| [f64::from(i) + 0.5, -f64::from(i)])
            .collect();
        assert_eq!(lm.to_f64(), want);
        let Some(Value::Array(r)) = c.get("rect") else {
            panic!("rect: {:?}", c.get("rect"))
        };
        assert_eq!((r.shape.clone(), r.to_f64()), (vec![2], vec![1.0, -2.0]));
        // Rows of different lengths stay a list (each numeric row is an array of its own).
        let Some(Value::List(rows)) = c.get("ragged") else {
            panic!("ragged: {:?}", c.get("ragged"))
        };
        assert!(
            matches!(&rows[..], [Value::Array(a), Value::List(e)] if a.shape == [1] && e.is_empty())
        );
        for k in ["mixed", "pair", "empty"] {
            assert_eq!(c.get(k), v.get(k), "{k}");
        }
    }

    #[test]
    fn shared_numbers_count_against_the_budget() {
        // l = [0.5] * 1000; (l, l, ... 1000 times): a million floats from 11 KB of pickle.
        let mut p = vec![0x80, 4, b']', b'q', 0, b'('];
        for _ in 0..1000 {
            p.push(b'G');
            p.extend_from_slice(&0.5f64.to_be_bytes());
        }
        p.extend_from_slice(b"e0(");
        for _ in 0..1000 {
            p.extend_from_slice(&[b'h', 0]);
        }
        p.extend_from_slice(b"t.");
        assert!(matches!(loads(&p), Err(PickleError::TooComplex(_))));
        // One copy of the list is fine.
        let one = [&p[..9006], b"e."].concat();
        assert_eq!(
            loads(&one).unwrap().as_seq().map(<[Value]>::len),
            Some(1000)
        );
    }

    #[test]
    fn fortran_and_big_endian_arrays_are_normalised() {
        // 2x3 float64 in Fortran order, big-endian: columns (1,4), (2,5), (3,6).
        let mut data = Vec::new();
        for v in [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0] {
            data.extend_from_slice(&v.to_be_bytes());
        }
        let mut p = vec![0x80, 4];
        write_global(&mut p, "numpy._core.multiarray", "_reconstruct");
        write_global(&mut p, "numpy", "ndarray");
        p.extend_from_slice(&[b'K', 0, 0x85, b'C', 1, b'b', 0x87, b'R', b'(', b'K', 1]);
        p.extend_from_slice(&[b'K', 2, b'K', 3, 0x86]);
        write_global(&mut p, "numpy", "dtype");
        write_str(&mut p, "f8");
        p.extend_from_slice(&[0x89, 0x88, 0x87, b'R', b'(', b'K', 3]);
        write_str(&mut p, ">");
        p.extend_from_slice(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
        p.push(0x88);
        write_bytes(&mut p, &data);
        p.extend_from_slice(b"tb.");
        let Value::Array(a) = loads(&p).unwrap() else {
            panic!()
        };
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.to_f64(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }
}
