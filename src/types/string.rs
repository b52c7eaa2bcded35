//! The string type in Redis's three encodings: `int`, `embstr` (short, set whole) and `raw`.
//! A short string lives inside the value itself, with no allocation of its own.

use crate::util::num::parse_i64_strict;

/// Longest string Redis keeps as `embstr` (`OBJ_ENCODING_EMBSTR_SIZE_LIMIT`).
const EMBSTR_MAX: usize = 44;

/// Longest string kept inside the value itself: what fits beside the enum's tag and a length
/// byte in the 24 bytes every `Value` has anyway.
const INLINE_MAX: usize = 22;

#[derive(Debug, Clone, PartialEq)]
pub enum StrValue {
    Int(i64),
    /// Written whole, up to 22 bytes: no allocation of its own. Reported as `embstr`.
    Inline(InlineStr),
    /// Written whole by SET and friends; reported as `embstr` up to 44 bytes, `raw` above.
    Whole(Box<[u8]>),
    /// Modified in place (APPEND, SETRANGE, SETBIT); reported as `raw`. Boxed so that the
    /// inline variant fits: a bare `Vec` would make every `Value` 32 bytes.
    #[allow(clippy::box_collection)]
    Raw(Box<Vec<u8>>),
}

/// A short string stored in place.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineStr {
    len: u8,
    bytes: [u8; INLINE_MAX],
}

impl InlineStr {
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
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
        if b.len() <= INLINE_MAX {
            let mut bytes = [0; INLINE_MAX];
            bytes[..b.len()].copy_from_slice(b);
            StrValue::Inline(InlineStr {
                len: b.len() as u8,
                bytes,
            })
        } else {
            StrValue::Whole(b.into())
        }
    }

    /// A string built by a command that may modify it in place later.
    pub fn raw(v: Vec<u8>) -> StrValue {
        StrValue::Raw(Box::new(v))
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            StrValue::Int(_) => "int",
            StrValue::Inline(_) => "embstr",
            StrValue::Whole(b) if b.len() <= EMBSTR_MAX => "embstr",
            StrValue::Whole(_) | StrValue::Raw(_) => "raw",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            StrValue::Int(v) => itoa::Buffer::new().format(*v).len(),
            StrValue::Inline(s) => s.len as usize,
            StrValue::Whole(b) => b.len(),
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
            StrValue::Inline(s) => f(s.as_bytes()),
            StrValue::Whole(b) => f(b),
            StrValue::Raw(b) => f(b),
        }
    }

    /// Bytes the value holds outside itself (MEMORY USAGE).
    pub fn heap_bytes(&self) -> usize {
        match self {
            StrValue::Int(_) | StrValue::Inline(_) => 0,
            StrValue::Whole(b) => b.len(),
            StrValue::Raw(b) => std::mem::size_of::<Vec<u8>>() + b.capacity(),
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
            *self = StrValue::raw(self.to_vec());
        }
        match self {
            StrValue::Raw(v) => v,
            _ => unreachable!("converted to Raw above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_by_length_and_history() {
        for (len, encoding) in [
            (0, "embstr"),
            (22, "embstr"),
            (23, "embstr"),
            (44, "embstr"),
            (45, "raw"),
        ] {
            let bytes = vec![b'x'; len];
            let mut s = StrValue::from_bytes(&bytes);
            assert_eq!(s.encoding(), encoding, "{len} bytes");
            assert_eq!((s.len(), s.to_vec()), (len, bytes.clone()));
            assert_eq!(s.heap_bytes() == 0, len <= INLINE_MAX, "{len} bytes");
            s.make_raw().push(b'y');
            assert_eq!(s.encoding(), "raw");
            assert_eq!(s.len(), len + 1);
        }
        assert_eq!(StrValue::from_bytes(b"-12").encoding(), "int");
        assert_eq!(StrValue::from_bytes_no_int(b"12").encoding(), "embstr");
    }
}
