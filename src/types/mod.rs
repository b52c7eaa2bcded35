//! Value types and their encodings: strings, hashes, sets, lists and sorted sets so far; the other types join in later issues.

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
