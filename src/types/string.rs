//! The string type in Redis's three encodings: `int`, `embstr` (short, set whole) and `raw`.

use crate::util::num::parse_i64_strict;

/// Longest string Redis keeps as `embstr` (`OBJ_ENCODING_EMBSTR_SIZE_LIMIT`).
const EMBSTR_MAX: usize = 44;

#[derive(Debug, Clone, PartialEq)]
pub enum StrValue {
    Int(i64),
    /// Written whole by SET and friends; reported as `embstr` up to 44 bytes.
    Emb(Box<[u8]>),
    /// Modified in place (APPEND, SETRANGE, SETBIT) or long; reported as `raw`.
    Raw(Vec<u8>),
}

impl StrValue {
    /// The encoding Redis picks for a value written whole (`tryObjectEncoding`).
    pub fn from_bytes(b: &[u8]) -> StrValue {
        if b.len() <= 20 {
            if let Some(v) = parse_i64_strict(b) {
                return StrValue::Int(v);
            }
        }
        StrValue::from_bytes_no_int(b)
    }

    /// `embstr` or `raw` by length, never `int` (e.g. INCRBYFLOAT's result, which Redis stores
    /// as a plain string object).
    pub fn from_bytes_no_int(b: &[u8]) -> StrValue {
        if b.len() <= EMBSTR_MAX {
            StrValue::Emb(b.into())
        } else {
            StrValue::Raw(b.to_vec())
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            StrValue::Int(_) => "int",
            StrValue::Emb(_) => "embstr",
            StrValue::Raw(_) => "raw",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            StrValue::Int(v) => itoa::Buffer::new().format(*v).len(),
            StrValue::Emb(b) => b.len(),
            StrValue::Raw(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with the value's bytes (integers are formatted on the stack).
    #[inline]
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            StrValue::Int(v) => f(itoa::Buffer::new().format(*v).as_bytes()),
            StrValue::Emb(b) => f(b),
            StrValue::Raw(b) => f(b),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.with_bytes(|b| b.to_vec())
    }

    /// The value as an integer, if it is one (for INCR and friends).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            StrValue::Int(v) => Some(*v),
            other => other.with_bytes(parse_i64_strict),
        }
    }

    /// Converts to the `raw` encoding for in-place modification.
    pub fn make_raw(&mut self) -> &mut Vec<u8> {
        if !matches!(self, StrValue::Raw(_)) {
            *self = StrValue::Raw(self.to_vec());
        }
        match self {
            StrValue::Raw(v) => v,
            _ => unreachable!("converted to Raw above"),
        }
    }
}
