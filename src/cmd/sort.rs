//! SORT and SORT_RO (Redis 7.0's sort.c): lists, sets and sorted sets sorted numerically or
//! (ALPHA) by collation, by the elements themselves or by keys a BY pattern names, with
//! LIMIT, GET patterns (`#`, `key*`, `hash*->field`) and STORE into a list.
//!
//! A BY or GET pattern can name any key, so such a SORT runs with every shard's data
//! (`CommandSpec::reaches`); in cluster mode Redis 7.0 refuses them (GET always, BY when it
//! is a real pattern).

use crate::config::keyspace_events as class;
use std::cmp::Ordering;
use std::ffi::CString;

use crate::acl;
use crate::cmd::{flag::*, CommandSpec, Ctx};
use crate::db::{Db, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::types::list::{End, List};
use crate::types::Value;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("sort", -2, WRITE | DENYOOM | MOVABLE_KEYS, sort)
        .access(acl::READ, acl::WRITE)
        .key_finder(sort_keys)
        .reaches(has_patterns)
        .acl(&["@set", "@sortedset", "@list", "@dangerous"])
        .doc(
            "generic",
            "1.0.0",
            "Sort the elements in a list, set or sorted set",
        ),
    CommandSpec::keyed("sort_ro", -2, READONLY | MOVABLE_KEYS, sort_ro)
        .key_finder(sort_ro_keys)
        .reaches(has_patterns)
        .acl(&["@set", "@sortedset", "@list", "@dangerous"])
        .doc(
            "generic",
            "7.0.0",
            "Sort the elements in a list, set or sorted set. Read-only variant of SORT.",
        ),
];

/// SORT's keys (`sortGetKeys`): the sorted key and the last STORE key, skipping the
/// arguments of LIMIT, GET and BY.
fn sort_keys(a: &Args<'_>) -> Option<Vec<usize>> {
    let mut store = None;
    let mut i = 2;
    while i < a.len() {
        if a.is(i, "LIMIT") {
            i += 2;
        } else if a.is(i, "GET") || a.is(i, "BY") {
            i += 1;
        } else if a.is(i, "STORE") && i + 1 < a.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    Some(std::iter::once(1).chain(store).collect())
}

fn sort_ro_keys(_: &Args<'_>) -> Option<Vec<usize>> {
    Some(vec![1])
}

/// Whether the request has a GET, or a BY with a `*`: then it may read any key.
fn has_patterns(a: &Args<'_>) -> bool {
    (2..a.len().saturating_sub(1))
        .any(|i| a.is(i, "GET") || (a.is(i, "BY") && c_str(a.get(i + 1)).contains(&b'*')))
}

/// The bytes C string functions see: up to the first NUL.
fn c_str(b: &[u8]) -> &[u8] {
    b.split(|&c| c == 0).next().unwrap_or_default()
}

fn sort(c: &mut Ctx, a: &Args) -> CmdResult {
    sort_generic(c, a, false)
}

fn sort_ro(c: &mut Ctx, a: &Args) -> CmdResult {
    sort_generic(c, a, true)
}

/// What a BY or GET pattern names for one element (`lookupKeyByPattern`): the element itself
/// for `#`, else the string at the key with the first `*` replaced by the element, or the
/// field after `->` of the hash there. `None` without a `*`, or for a missing key or field
/// or another type.
fn lookup_by_pattern(db: &mut Db, pattern: &[u8], subst: &[u8], now: i64) -> Option<Vec<u8>> {
    if pattern == b"#" || pattern.starts_with(b"#\0") {
        return Some(subst.to_vec());
    }
    let star = c_str(pattern).iter().position(|&b| b == b'*')?;
    let after = &c_str(pattern)[star + 1..];
    // The first `->` after the `*` with something after it (as C sees the string).
    let field_at = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&f| f + 2 < after.len())
        .map(|f| star + 1 + f);
    let (key_tail_end, field) = match field_at {
        Some(f) => (f, Some(&pattern[f + 2..])),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(pattern.len() + subst.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(subst);
    key.extend_from_slice(&pattern[star + 1..key_tail_end]);
    let entry = db.read(&key, now)?;
    match (&entry.value, field) {
        (Value::Hash(h), Some(field)) => h.get(field).map(<[u8]>::to_vec),
        (Value::Str(s), None) => Some(s.to_vec()),
        _ => None,
    }
}

/// One element to sort: the element, and what it sorts by.
struct Item {
    obj: Vec<u8>,
    score: f64,
    by: Option<Vec<u8>>,
}

/// C's `strcoll` (the locale's collation, `LC_COLLATE` from the environment as Redis sets
/// it) of the two byte strings as C strings.
fn collate(a: &[u8], b: &[u8]) -> Ordering {
    let (Ok(x), Ok(y)) = (CString::new(c_str(a)), CString::new(c_str(b))) else {
        return Ordering::Equal;
    };
    // SAFETY: both are NUL-terminated and live across the call.
    unsafe { libc::strcoll(x.as_ptr(), y.as_ptr()) }.cmp(&0)
}

/// Redis's `compareStringObjects`: memcmp, then the shorter first.
fn binary(a: &[u8], b: &[u8]) -> Ordering {
    a.cmp(b)
}

/// A sort weight as SORT reads it: `strtod` over the C string, all of it a number, no
/// ERANGE, not NaN (leading spaces and an empty text are fine: 0).
fn weight(v: &[u8]) -> Option<f64> {
    let text = c_str(v);
    let cs = CString::new(text).ok()?;
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `cs` is NUL-terminated and outlives the call; errno is thread-local.
    let (value, erange) = unsafe {
        *libc::__errno_location() = 0;
        let v = libc::strtod(cs.as_ptr(), &mut end);
        (v, *libc::__errno_location() == libc::ERANGE)
    };
    let used = end as usize - cs.as_ptr() as usize;
    (used == text.len() && !erange && !value.is_nan()).then_some(value)
}

fn sort_generic(c: &mut Ctx, a: &Args, readonly: bool) -> CmdResult {
    let cluster = c.shard.slot_map.borrow().enabled;
    let (mut desc, mut alpha) = (false, false);
    let (mut limit_start, mut limit_count) = (0i64, -1i64);
    let mut by: Option<&[u8]> = None;
    let mut dontsort = false;
    let mut store: Option<&[u8]> = None;
    let mut gets: Vec<&[u8]> = Vec::new();
    let mut j = 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        if a.is(j, "ASC") {
            desc = false;
        } else if a.is(j, "DESC") {
            desc = true;
        } else if a.is(j, "ALPHA") {
            alpha = true;
        } else if a.is(j, "LIMIT") && left >= 2 {
            limit_start = crate::util::num::arg_i64(a.get(j + 1))?;
            limit_count = crate::util::num::arg_i64(a.get(j + 2))?;
            j += 2;
        } else if !readonly && a.is(j, "STORE") && left >= 1 {
            store = Some(a.get(j + 1));
            j += 1;
        } else if a.is(j, "BY") && left >= 1 {
            by = Some(a.get(j + 1));
            if !c_str(a.get(j + 1)).contains(&b'*') {
                dontsort = true;
            } else if cluster {
                return Err(Error::msg("BY option of SORT denied in Cluster mode."));
            }
            j += 1;
        } else if a.is(j, "GET") && left >= 1 {
            if cluster {
                return Err(Error::msg("GET option of SORT denied in Cluster mode."));
            }
            gets.push(a.get(j + 1));
            j += 1;
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    let key = a.get(1);
    let now = c.now;
    // Redis converts a sorted set to its skiplist encoding for good before sorting it.
    let Some(entry) = c.db.read(key, now) else {
        return finish(c, Vec::new(), 0, -1, &gets, store);
    };
    let vectorlen = match &mut entry.value {
        Value::List(l) => l.len(),
        Value::Set(s) => s.len(),
        Value::ZSet(z) => {
            z.convert();
            z.len()
        }
        _ => return Err(Error::WrongType),
    } as i64;
    // A set read in storage order is not a reproducible order: sorted when stored.
    if dontsort && matches!(entry.value, Value::Set(_)) && store.is_some() {
        dontsort = false;
        alpha = true;
        by = None;
    }
    let mut start = limit_start.max(0).min(vectorlen);
    let limit_count = limit_count.max(-1).min(vectorlen);
    let mut end = if limit_count < 0 {
        vectorlen - 1
    } else {
        start + limit_count - 1
    };
    if start >= vectorlen {
        start = vectorlen - 1;
        end = vectorlen - 2;
    }
    if end >= vectorlen {
        end = vectorlen - 1;
    }
    // Lists and sorted sets keep their order when nothing is sorted: only the range is read.
    let mut items: Vec<Item> = Vec::new();
    let item = |obj: &[u8]| Item {
        obj: obj.to_vec(),
        score: 0.0,
        by: None,
    };
    match &entry.value {
        Value::List(l) if dontsort => {
            if end >= start {
                let n = (end - start + 1) as usize;
                if desc {
                    items.extend(l.iter_rev().skip(start as usize).take(n).map(item));
                } else {
                    items.extend(l.iter_from(start as usize).take(n).map(item));
                }
                end -= start;
                start = 0;
            }
        }
        Value::List(l) => items.extend(l.iter().map(item)),
        Value::Set(s) => {
            for m in s.iter() {
                items.push(m.with_bytes(item));
            }
        }
        Value::ZSet(z) if dontsort => {
            let n = (end - start + 1).max(0) as usize;
            let len = z.len();
            let (lo, hi) = if desc {
                (len - start as usize - n, len - start as usize)
            } else {
                (start as usize, start as usize + n)
            };
            items.extend(z.range(lo, hi, desc).into_iter().map(|(m, _)| item(m)));
            end -= start;
            start = 0;
        }
        Value::ZSet(z) => items.extend(z.iter().map(|(m, _)| item(m))),
        _ => unreachable!("checked above"),
    }
    if !dontsort {
        let mut conversion_error = false;
        for it in &mut items {
            let value = match by {
                Some(pattern) => match lookup_by_pattern(&mut c.db, pattern, &it.obj, now) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.obj.clone(),
            };
            if alpha {
                if by.is_some() {
                    it.by = Some(value);
                }
            } else {
                match weight(&value) {
                    Some(w) => it.score = w,
                    None => conversion_error = true,
                }
            }
        }
        let storing = store.is_some();
        let by_pattern = by.is_some();
        let cmp = |x: &Item, y: &Item| -> Ordering {
            let o = if !alpha {
                x.score
                    .partial_cmp(&y.score)
                    .filter(|o| o.is_ne())
                    .unwrap_or_else(|| binary(&x.obj, &y.obj))
            } else if by_pattern {
                match (&x.by, &y.by) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(p), Some(q)) if storing => binary(p, q),
                    (Some(p), Some(q)) => collate(p, q),
                }
            } else if storing {
                binary(&x.obj, &y.obj)
            } else {
                collate(&x.obj, &y.obj)
            };
            if desc {
                o.reverse()
            } else {
                o
            }
        };
        // With BY and a LIMIT short of everything, Redis sorts only the wanted ranks with its
        // partial quicksort (equal elements then come in its order); else glibc's qsort, a
        // stable merge sort.
        let n = items.len() as i64;
        if by.is_some() && (start != 0 || end != n - 1) {
            if end >= start {
                crate::util::pqsort::pqsort(&mut items, start as usize, end as usize, &mut { cmp });
            }
        } else {
            items.sort_by(cmp);
        }
        if conversion_error {
            return Err(Error::msg(
                "One or more scores can't be converted into double",
            ));
        }
    }
    finish(c, items, start, end, &gets, store)
}

/// Replies with (or stores as a list) the elements of ranks `start..=end`, each as itself or
/// as what the GET patterns name for it.
fn finish(
    c: &mut Ctx,
    items: Vec<Item>,
    start: i64,
    end: i64,
    gets: &[&[u8]],
    store: Option<&[u8]>,
) -> CmdResult {
    let now = c.now;
    let picked: &[Item] = if end >= start {
        &items[start as usize..=end as usize]
    } else {
        &[]
    };
    let outputlen = if gets.is_empty() {
        picked.len()
    } else {
        gets.len() * picked.len()
    };
    match store {
        None => {
            c.out.array(outputlen);
            for it in picked {
                if gets.is_empty() {
                    c.out.bulk(&it.obj);
                }
                for pattern in gets {
                    match lookup_by_pattern(&mut c.db, pattern, &it.obj, now) {
                        Some(v) => c.out.bulk(&v),
                        None => c.out.null(),
                    }
                }
            }
        }
        Some(dst) => {
            let fill = crate::cmd::list::fill_of(c);
            let mut list = List::new();
            for it in picked {
                if gets.is_empty() {
                    list.push(End::Tail, &it.obj, fill);
                }
                for pattern in gets {
                    let v = lookup_by_pattern(&mut c.db, pattern, &it.obj, now);
                    list.push(End::Tail, v.as_deref().unwrap_or_default(), fill);
                }
            }
            if outputlen > 0 {
                c.db.set(dst, Value::List(list), NO_EXPIRE, now);
                c.dirty(outputlen as u64);
                c.notify(class::LIST, "sortstore", dst);
            } else {
                let deleted = c.db.delete(dst, now);
                c.dirty(deleted as u64);
                if deleted {
                    c.notify(class::GENERIC, "del", dst);
                }
            }
            c.out.int(outputlen as i64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::args::with_args;

    #[test]
    fn keys_as_sort_get_keys() {
        let keys = |w: &[&str]| with_args(w, sort_keys);
        assert_eq!(keys(&["SORT", "k"]), Some(vec![1]));
        assert_eq!(
            keys(&["SORT", "k", "STORE", "d", "STORE", "e"]),
            Some(vec![1, 5])
        );
        assert_eq!(
            keys(&["SORT", "k", "GET", "STORE", "BY", "STORE"]),
            Some(vec![1])
        );
        assert_eq!(
            keys(&["SORT", "k", "LIMIT", "STORE", "x", "STORE"]),
            Some(vec![1])
        );
        assert!(with_args(&["SORT", "k", "GET", "#"], has_patterns));
        assert!(!with_args(&["SORT", "k", "BY", "nosort"], has_patterns));
        assert!(with_args(&["SORT", "k", "BY", "w_*"], has_patterns));
    }

    #[test]
    fn weights_read_as_strtod() {
        assert_eq!(weight(b"1.5"), Some(1.5));
        assert_eq!(weight(b""), Some(0.0));
        assert_eq!(weight(b" 2"), Some(2.0));
        assert_eq!(weight(b"0x10"), Some(16.0));
        assert_eq!(weight(b"3\0junk"), Some(3.0));
        assert_eq!(weight(b"1e400"), None);
        assert_eq!(weight(b"nan"), None);
        assert_eq!(weight(b"x"), None);
    }
}
