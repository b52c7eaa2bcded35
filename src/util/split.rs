//! Splitting a line into arguments with Redis's `sdssplitargs` rules: inline commands,
//! redis.conf lines, nodes.conf and AOF manifest lines.

/// Where an argument's bytes are: in the split line (relative to its start) or in the
/// scratch buffer (quoted arguments, unescaped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub in_scratch: bool,
}

/// A quote opened and never closed (or a closing quote not followed by a space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnbalancedQuotes;

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Splits an inline line with Redis's `sdssplitargs` rules. Unquoted arguments stay spans into
/// the line; quoted ones are unescaped into `scratch`.
pub fn split_inline(
    line: &[u8],
    spans: &mut Vec<Span>,
    scratch: &mut Vec<u8>,
) -> Result<(), UnbalancedQuotes> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(());
        }
        let token_start = p;
        let scratch_start = scratch.len();
        let mut quoted = false;
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(p);
            if in_double {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && at(p + 2).is_ascii_hexdigit()
                    && at(p + 3).is_ascii_hexdigit()
                {
                    scratch.push(hex(at(p + 2)) * 16 + hex(at(p + 3)));
                    p += 3;
                } else if c == b'\\' && p + 1 < line.len() {
                    p += 1;
                    scratch.push(match line[p] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if p + 1 < line.len() && !is_space(line[p + 1]) {
                        return Err(UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if p >= line.len() {
                    return Err(UnbalancedQuotes);
                } else {
                    scratch.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    scratch.push(b'\'');
                } else if c == b'\'' {
                    if p + 1 < line.len() && !is_space(line[p + 1]) {
                        return Err(UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if p >= line.len() {
                    return Err(UnbalancedQuotes);
                } else {
                    scratch.push(c);
                }
            } else if p >= line.len() || matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            } else if c == b'"' || c == b'\'' {
                if !quoted {
                    // Move what the token had so far into scratch: it now needs unescaping.
                    scratch.extend_from_slice(&line[token_start..p]);
                    quoted = true;
                }
                if c == b'"' {
                    in_double = true;
                } else {
                    in_single = true;
                }
            } else if quoted {
                scratch.push(c);
            }
            p += 1;
        }
        if quoted {
            spans.push(Span {
                start: scratch_start,
                end: scratch.len(),
                in_scratch: true,
            });
        } else {
            spans.push(Span {
                start: token_start,
                end: p,
                in_scratch: false,
            });
        }
    }
}

/// Splits a line into arguments with Redis's `sdssplitargs` rules (config files, CLI options).
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
    let mut spans = Vec::new();
    let mut scratch = Vec::new();
    split_inline(line, &mut spans, &mut scratch)?;
    Ok(spans
        .iter()
        .map(|s| {
            if s.in_scratch {
                scratch[s.start..s.end].to_vec()
            } else {
                line[s.start..s.end].to_vec()
            }
        })
        .collect())
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}
