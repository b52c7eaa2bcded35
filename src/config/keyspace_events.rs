//! `notify-keyspace-events`: the classes of keyspace notifications, as Redis 7.0's
//! `NOTIFY_*` bits, and their flag string both ways (`keyspaceEventsStringToFlags` and
//! `keyspaceEventsFlagsToString`).

/// `K`: publish to `__keyspace@<db>__:<key>`.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish to `__keyevent@<db>__:<event>`.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: strings.
pub const STRING: u32 = 1 << 3;
/// `l`: lists.
pub const LIST: u32 = 1 << 4;
/// `s`: sets.
pub const SET: u32 = 1 << 5;
/// `h`: hashes.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted sets.
pub const ZSET: u32 = 1 << 7;
/// `x`: keys deleted because they expired.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: keys evicted for `maxmemory`.
pub const EVICTED: u32 = 1 << 9;
/// `t`: streams.
pub const STREAM: u32 = 1 << 10;
/// `m`: key misses (not part of `A`).
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (accepted; redcell has no modules).
pub const MODULE: u32 = 1 << 13;
/// `n`: a key was created (not part of `A`).
pub const NEW: u32 = 1 << 14;
/// `A`: every class but `m` and `n`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Redis's error for a flag string with a character outside the classes.
pub const INVALID: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// The flags a string names, or `None` for an unknown character.
pub fn parse(classes: &[u8]) -> Option<u32> {
    let mut flags = 0;
    for &c in classes {
        flags |= match c {
            b'A' => ALL,
            b'g' => GENERIC,
            b'$' => STRING,
            b'l' => LIST,
            b's' => SET,
            b'h' => HASH,
            b'z' => ZSET,
            b'x' => EXPIRED,
            b'e' => EVICTED,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b't' => STREAM,
            b'm' => KEY_MISS,
            b'd' => MODULE,
            b'n' => NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// The canonical flag string CONFIG GET shows: `A` when every class of it is set, else the
/// class letters in Redis's order, then `K`, `E`, `m`.
pub fn render(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// The flag string kept in the configuration: `render`, plus `n` when `render` drops it
/// (with `A`), so that it parses back to the same flags.
pub fn stored(flags: u32) -> String {
    let mut s = render(flags);
    if flags & ALL == ALL && flags & NEW != 0 {
        s.push('n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_redis() {
        assert_eq!(render(parse(b"KEA").unwrap()), "AKE");
        assert_eq!(render(parse(b"Ex$g").unwrap()), "g$xE");
        // `A` with `n`: Redis shows only `A` (its `A` branch skips `n`).
        assert_eq!(render(parse(b"AnKm").unwrap()), "AKm");
        // ... but keeps it (`A` holds every class but `m` and `n`).
        let flags = parse(b"AnKm").unwrap();
        assert_eq!(parse(stored(flags).as_bytes()), Some(flags));
        assert_eq!(render(parse(b"").unwrap()), "");
        assert_eq!(parse(b"KEq"), None);
    }
}
