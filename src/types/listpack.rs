//! A packed run of byte strings in one exact-size allocation (Redis's listpack, simplified):
//! small hashes and sets live in one of these instead of a hash table.
//!
//! Layout: `[kind: u8 = 0][count: LEB128]` then each entry as a LEB128 length and its bytes.
//! The kind byte lets a set tell a listpack from an intset sharing the same storage slot. An
//! empty allocation is an empty listpack. Every change reallocates to the exact size, as Redis
//! does, so a small value carries no spare capacity.

/// The kind byte of a listpack (intsets store their integer width there: 2, 4 or 8).
pub const KIND: u8 = 0;
/// Largest listpack Redis lets grow (`LISTPACK_MAX_SAFETY_SIZE`); past it, values convert.
pub const MAX_SAFE_BYTES: usize = 1 << 30;

/// A listpack over its boxed bytes. `repr(transparent)` so a set can view its storage as one.
#[repr(transparent)]
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Listpack {
    buf: Box<[u8]>,
}

/// Bytes needed to encode `n` as LEB128.
#[inline]
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Decodes the LEB128 at `off`: (value, bytes used).
#[inline]
fn get_varint(buf: &[u8], off: usize) -> (usize, usize) {
    let mut v = 0usize;
    let mut shift = 0;
    let mut i = off;
    loop {
        let b = buf[i];
        v |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b < 0x80 {
            return (v, i - off);
        }
        shift += 7;
    }
}

/// Encoded size of one entry.
#[inline]
pub fn entry_size(e: &[u8]) -> usize {
    varint_len(e.len()) + e.len()
}

impl Listpack {
    pub fn new() -> Listpack {
        Listpack::default()
    }

    /// An empty listpack that already carries its header (and so its kind byte).
    pub fn with_header() -> Listpack {
        Listpack {
            buf: Box::new([KIND, 0]),
        }
    }

    /// Views a set's packed storage (whose kind byte says listpack) as a listpack.
    #[allow(clippy::borrowed_box)]
    pub fn from_ref(buf: &Box<[u8]>) -> &Listpack {
        // SAFETY: `Listpack` is `repr(transparent)` over `Box<[u8]>`.
        unsafe { &*(buf as *const Box<[u8]> as *const Listpack) }
    }

    /// Mutable form of `from_ref`.
    pub fn from_mut(buf: &mut Box<[u8]>) -> &mut Listpack {
        // SAFETY: `Listpack` is `repr(transparent)` over `Box<[u8]>`.
        unsafe { &mut *(buf as *mut Box<[u8]> as *mut Listpack) }
    }

    pub fn into_raw(self) -> Box<[u8]> {
        self.buf
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        if self.buf.len() < 2 {
            0
        } else {
            get_varint(&self.buf, 1).0
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Allocated size in bytes.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// Whether `extra` more bytes keep the listpack under Redis's safety limit.
    pub fn safe_to_add(&self, extra: usize) -> bool {
        self.buf.len() + extra <= MAX_SAFE_BYTES
    }

    /// Rewrites the header of `v` (a listpack's bytes) for `n` entries; the entries move
    /// only when the count's encoded length changes.
    fn set_count(v: &mut Vec<u8>, n: usize) {
        let old = if v.len() < 2 {
            0
        } else {
            1 + get_varint(v, 1).1
        };
        let mut hdr = [KIND; 11];
        let mut len = 1;
        let mut rest = n;
        while rest >= 0x80 {
            hdr[len] = (rest as u8) | 0x80;
            rest >>= 7;
            len += 1;
        }
        hdr[len] = rest as u8;
        v.splice(0..old, hdr[..len + 1].iter().copied());
    }

    /// Header size for `n` entries.
    #[inline]
    fn header_len(n: usize) -> usize {
        1 + varint_len(n)
    }

    /// Offset of the first entry (valid only when not empty).
    #[inline]
    pub fn first(&self) -> usize {
        Self::header_len(self.len())
    }

    /// The entry at byte offset `off` and the offset of the next one.
    #[inline]
    pub fn entry(&self, off: usize) -> (&[u8], usize) {
        let (len, used) = get_varint(&self.buf, off);
        let start = off + used;
        (&self.buf[start..start + len], start + len)
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            lp: self,
            off: self.first(),
            left: self.len(),
        }
    }

    /// Offset of the first entry equal to `needle` among entries 0, stride, 2*stride, ...
    /// (stride 2 searches a hash's fields).
    pub fn find(&self, needle: &[u8], stride: usize) -> Option<usize> {
        let mut off = self.first();
        let n = self.len();
        let mut i = 0;
        while i < n {
            let (len, used) = get_varint(&self.buf, off);
            let start = off + used;
            if i % stride == 0 && len == needle.len() && &self.buf[start..start + len] == needle {
                return Some(off);
            }
            off = start + len;
            i += 1;
        }
        None
    }

    /// Offsets of every entry, for random access.
    pub fn offsets(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.len());
        let mut off = self.first();
        for _ in 0..self.len() {
            out.push(off);
            off = self.entry(off).1;
        }
        out
    }

    /// Appends entries at the end.
    pub fn push(&mut self, entries: &[&[u8]]) {
        let old = self.len();
        let n = old + entries.len();
        let add: usize = entries.iter().map(|e| entry_size(e)).sum();
        let grow = Self::header_len(n)
            - if self.buf.is_empty() {
                0
            } else {
                Self::header_len(old)
            };
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.reserve_exact(add + grow);
        Self::set_count(&mut v, n);
        for e in entries {
            put_varint(&mut v, e.len());
            v.extend_from_slice(e);
        }
        self.buf = v.into_boxed_slice();
    }

    /// Replaces the entry at offset `off` with `new`.
    pub fn replace(&mut self, off: usize, new: &[u8]) {
        let end = self.entry(off).1;
        let mut enc = Vec::with_capacity(entry_size(new));
        put_varint(&mut enc, new.len());
        enc.extend_from_slice(new);
        if enc.len() == end - off {
            self.buf[off..end].copy_from_slice(&enc);
            return;
        }
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.splice(off..end, enc);
        self.buf = v.into_boxed_slice();
    }

    /// Removes `n` entries starting at offset `off`.
    pub fn remove(&mut self, off: usize, n: usize) {
        let mut end = off;
        for _ in 0..n {
            end = self.entry(end).1;
        }
        let left = self.len() - n;
        // The header stays even when empty: a set's listpack must keep its kind byte.
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.drain(off..end);
        Self::set_count(&mut v, left);
        self.buf = v.into_boxed_slice();
    }
}

/// Iterates a listpack's entries in order.
pub struct Iter<'a> {
    lp: &'a Listpack,
    off: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (e, next) = self.lp.entry(self.off);
        self.off = next;
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_find_replace_remove() {
        let mut lp = Listpack::new();
        assert!(lp.is_empty());
        assert_eq!(lp.byte_len(), 0);
        let long = vec![b'x'; 300];
        lp.push(&[b"a", b"1", b"bb", &long]);
        assert_eq!(lp.len(), 4);
        assert_eq!(lp.byte_len(), 2 + 2 + 2 + 3 + 302);
        assert_eq!(
            lp.iter().collect::<Vec<_>>(),
            vec![&b"a"[..], b"1", b"bb", &long[..]]
        );
        // Stride 2 only looks at fields: "1" is a value.
        assert_eq!(lp.find(b"1", 2), None);
        assert_eq!(lp.find(b"1", 1), Some(4));
        let off = lp.find(b"bb", 2).unwrap();
        let (_, voff) = lp.entry(off);
        lp.replace(voff, b"short");
        assert_eq!(lp.entry(voff).0, b"short");
        lp.replace(voff, &long);
        assert_eq!(lp.entry(voff).0, &long[..]);
        lp.remove(lp.first(), 2);
        assert_eq!(lp.len(), 2);
        assert_eq!(lp.iter().next(), Some(&b"bb"[..]));
        assert_eq!(lp.offsets().len(), 2);
        lp.remove(lp.first(), 2);
        assert!(lp.is_empty());
        assert_eq!(lp.byte_len(), 2);
        assert_eq!(Listpack::with_header().byte_len(), 2);
        assert!(Listpack::with_header().is_empty());
    }

    #[test]
    fn header_grows_and_shrinks_with_the_count() {
        let mut lp = Listpack::new();
        let items: Vec<Vec<u8>> = (0..300).map(|i| format!("e{i}").into_bytes()).collect();
        for (i, it) in items.iter().enumerate() {
            lp.push(&[it]);
            assert_eq!(lp.len(), i + 1);
        }
        assert_eq!(lp.first(), 3);
        assert_eq!(
            lp.iter().collect::<Vec<_>>(),
            items.iter().map(|v| &v[..]).collect::<Vec<_>>()
        );
        while lp.len() > 100 {
            let off = lp.find(format!("e{}", lp.len() - 1).as_bytes(), 1).unwrap();
            lp.remove(off, 1);
        }
        assert_eq!(lp.first(), 2);
        assert_eq!(
            lp.iter().collect::<Vec<_>>(),
            items[..100].iter().map(|v| &v[..]).collect::<Vec<_>>()
        );
        let exact: usize = 2 + items[..100].iter().map(|v| entry_size(v)).sum::<usize>();
        assert_eq!(lp.byte_len(), exact);
    }

    #[test]
    fn varints_round_trip() {
        for n in [
            0usize,
            1,
            127,
            128,
            300,
            16383,
            16384,
            1 << 20,
            usize::MAX >> 1,
        ] {
            let mut v = Vec::new();
            put_varint(&mut v, n);
            assert_eq!(v.len(), varint_len(n));
            assert_eq!(get_varint(&v, 0), (n, v.len()));
        }
    }
}
