//! Value types and their encodings: strings, hashes, sets, lists, sorted sets, streams and
//! HyperLogLogs, and the thresholds that choose between compact and big encodings.

pub mod geohash;
pub mod hash;
pub mod hll;
pub mod list;
pub mod listpack;
pub mod set;
pub mod stream;
pub mod string;
pub mod zset;

pub use hash::Hash;
pub use list::List;
pub use set::Set;
pub use stream::Stream;
pub use string::StrValue;
pub use zset::ZSet;

/// A type a command expects at a key: how to find it in a `Value` (WRONGTYPE otherwise). One
/// generic lookup (`db::Db::read_as` / `write_as`) serves every family.
pub trait Typed {
    fn of(v: &mut Value) -> Option<&mut Self>;
}

macro_rules! typed {
    ($t:ty, $variant:ident) => {
        impl Typed for $t {
            #[inline]
            fn of(v: &mut Value) -> Option<&mut $t> {
                match v {
                    Value::$variant(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}

typed!(StrValue, Str);
typed!(Hash, Hash);
typed!(Set, Set);
typed!(List, List);
typed!(ZSet, ZSet);

impl Typed for Stream {
    #[inline]
    fn of(v: &mut Value) -> Option<&mut Stream> {
        match v {
            Value::Stream(s) => Some(s),
            _ => None,
        }
    }
}

/// Every type's encoding thresholds, from the configuration (`hash-max-listpack-entries`
/// and the like); `Default` is Redis's default configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub hash: hash::HashLimits,
    pub set: set::SetLimits,
    pub zset: zset::ZsetLimits,
    pub list_fill: list::Fill,
    pub stream: stream::StreamLimits,
    /// Largest sparse HyperLogLog before it turns dense (`hll-sparse-max-bytes`).
    pub hll_sparse_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            hash: hash::HashLimits {
                max_entries: 128,
                max_value: 64,
            },
            set: set::SetLimits {
                max_intset: 512,
                max_listpack: 128,
                max_value: set::MAX_PACKED_MEMBER,
            },
            zset: zset::ZsetLimits {
                max_entries: 128,
                max_value: 64,
            },
            list_fill: list::Fill::default(),
            stream: stream::StreamLimits::default(),
            hll_sparse_max_bytes: 3000,
        }
    }
}

/// A value stored under a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(StrValue),
    Hash(Hash),
    Set(Set),
    List(List),
    /// Boxed: a stream's bookkeeping would otherwise grow every value.
    Stream(Box<Stream>),
    ZSet(ZSet),
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::List(_) => "list",
            Value::Stream(_) => "stream",
            Value::ZSet(_) => "zset",
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::List(l) => l.encoding(),
            Value::Stream(_) => "stream",
            Value::ZSet(z) => z.encoding(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_stays_small() {
        // Every key pays for the largest variant: hashes, sets and lists must not grow it.
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }
}
