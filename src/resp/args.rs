//! A request's arguments, borrowed from the read buffer (or the decoder's scratch for inline quoting).

use super::decode::Span;

/// The arguments of one request; `get(0)` is the command name.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    buf: &'a [u8],
    scratch: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Args<'a> {
    pub fn new(buf: &'a [u8], scratch: &'a [u8], spans: &'a [Span]) -> Args<'a> {
        Args {
            buf,
            scratch,
            spans,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        let s = self.spans[i];
        if s.in_scratch {
            &self.scratch[s.start..s.end]
        } else {
            &self.buf[s.start..s.end]
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Arguments from `from` on.
    pub fn rest(&self, from: usize) -> impl Iterator<Item = &'a [u8]> + '_ {
        (from..self.len()).map(move |i| self.get(i))
    }

    /// Whether argument `i` equals `word` ignoring ASCII case (`word` is upper case).
    #[inline]
    pub fn is(&self, i: usize, word: &str) -> bool {
        self.get(i).eq_ignore_ascii_case(word.as_bytes())
    }

    /// Appends this request, RESP-encoded, to `out` (used to forward it to another shard).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        encode_command(self.iter(), self.len(), out);
    }
}

/// Appends a multibulk request with `n` arguments.
pub fn encode_command<'b>(args: impl Iterator<Item = &'b [u8]>, n: usize, out: &mut Vec<u8>) {
    let mut num = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(num.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(num.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A request's arguments copied out of the read buffer, for requests that outlive it (a
/// blocked client's command waits on another shard while its connection reads on).
#[derive(Clone, Debug, Default)]
pub struct OwnedArgs {
    buf: Vec<u8>,
    spans: Vec<Span>,
}

impl OwnedArgs {
    pub fn from_iter<'b>(words: impl IntoIterator<Item = &'b [u8]>) -> OwnedArgs {
        let mut owned = OwnedArgs::default();
        for w in words {
            let start = owned.buf.len();
            owned.buf.extend_from_slice(w);
            owned.spans.push(Span {
                start,
                end: owned.buf.len(),
                in_scratch: false,
            });
        }
        owned
    }

    pub fn args(&self) -> Args<'_> {
        Args::new(&self.buf, &[], &self.spans)
    }
}

impl From<&Args<'_>> for OwnedArgs {
    fn from(args: &Args<'_>) -> OwnedArgs {
        OwnedArgs::from_iter(args.iter())
    }
}

/// Runs `f` with `words` as a request's arguments (for unit tests of argument parsers).
#[cfg(test)]
pub fn with_args<R>(words: &[&str], f: impl FnOnce(&Args) -> R) -> R {
    let owned = OwnedArgs::from_iter(words.iter().map(|w| w.as_bytes()));
    f(&owned.args())
}
