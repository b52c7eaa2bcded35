//! Glob-style matching with Redis's `stringmatchlen` rules (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes).

/// Whether `s` matches `pattern`. As in Redis, an empty string matches no pattern but the empty
/// one: callers special-case a lone `*` (KEYS, SCAN MATCH) to match every key.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    matches(pattern, s, 0, &mut false)
}

/// `skip_longer`: set when a `*` ran out of string; then no outer `*` can match either.
fn matches(mut p: &[u8], mut s: &[u8], depth: u32, skip_longer: &mut bool) -> bool {
    // Redis bounds recursion too; a pathological pattern simply fails to match.
    if depth > 1000 {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if matches(&p[1..], s, depth + 1, skip_longer) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                p = &p[1..];
                let negate = p.first() == Some(&b'^');
                if negate {
                    p = &p[1..];
                }
                let c = s[0];
                let mut hit = false;
                loop {
                    if p.is_empty() {
                        // Unterminated class: treat the end as its close, as Redis does.
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if p[0] == c {
                            hit = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut lo, mut hi) = (p[0], p[2]);
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        p = &p[2..];
                        if c >= lo && c <= hi {
                            hit = true;
                        }
                    } else if p[0] == c {
                        hit = true;
                    }
                    p = &p[1..];
                }
                if negate {
                    hit = !hit;
                }
                if !hit {
                    return false;
                }
                s = &s[1..];
                // `p` is at the closing `]` (or empty); the common advance below skips it.
                if p.is_empty() {
                    return s.is_empty();
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if p[0] != s[0] {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                if c != s[0] {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::glob_match as m;

    #[test]
    fn redis_glob_rules() {
        assert!(m(b"*", b"anything"));
        assert!(!m(b"*", b""));
        assert!(!m(b"a*a*a*a*a*a*a*a*a*a*a*a*a*b", &[b'a'; 200]));
        assert!(m(b"h?llo", b"hello"));
        assert!(!m(b"h?llo", b"hllo"));
        assert!(m(b"h*llo", b"heeeello"));
        assert!(m(b"h[ae]llo", b"hallo"));
        assert!(!m(b"h[ae]llo", b"hillo"));
        assert!(m(b"h[^e]llo", b"hallo"));
        assert!(!m(b"h[^e]llo", b"hello"));
        assert!(m(b"h[a-b]llo", b"hbllo"));
        assert!(m(b"h[b-a]llo", b"hallo"));
        assert!(m(b"h\\*llo", b"h*llo"));
        assert!(!m(b"h\\*llo", b"hello"));
        assert!(m(b"user:*", b"user:1000"));
        assert!(!m(b"user:*", b"use"));
        assert!(m(b"a*b*c", b"aXXbYYc"));
        assert!(m(b"[\\]]", b"]"));
        assert!(m(b"ab**", b"ab"));
        assert!(!m(b"", b"a"));
        assert!(m(b"", b""));
    }
}
