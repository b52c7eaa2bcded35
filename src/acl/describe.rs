//! Users written back as rules (ACL LIST, ACL GETUSER, ACL SAVE), as Redis 7.0's
//! `ACLDescribeUser`: flags, password hashes, then each selector's keys, channels and
//! commands, the commands as the fewest categories that fit plus single-command fixes.

use super::user::{Selector, User, FLAG_NAMES};
use super::Catalog;

/// The whole user as ACL LIST shows it after `user <name> `.
pub fn user(cat: &Catalog, u: &User) -> Vec<u8> {
    let mut out = Vec::new();
    for (flag, name) in FLAG_NAMES {
        if u.has(flag) {
            out.extend_from_slice(name.as_bytes());
            out.push(b' ');
        }
    }
    for p in &u.passwords {
        out.push(b'#');
        out.extend_from_slice(p.as_bytes());
        out.push(b' ');
    }
    for s in &u.selectors {
        let d = selector(cat, s);
        if s.root {
            out.extend_from_slice(&d);
        } else {
            out.extend_from_slice(b" (");
            out.extend_from_slice(&d);
            out.push(b')');
        }
    }
    out
}

/// One selector: keys, channels, command rules.
pub fn selector(cat: &Catalog, s: &Selector) -> Vec<u8> {
    let mut out = Vec::new();
    if s.all_keys {
        out.extend_from_slice(b"~* ");
    } else {
        for k in &s.keys {
            out.extend_from_slice(&k.describe());
            out.push(b' ');
        }
    }
    if s.all_channels {
        out.extend_from_slice(b"&* ");
    } else {
        out.extend_from_slice(b"resetchannels ");
        for c in &s.channels {
            out.push(b'&');
            out.extend_from_slice(c);
            out.push(b' ');
        }
    }
    out.extend_from_slice(commands(cat, s).as_bytes());
    out
}

/// The selector's key patterns as ACL GETUSER shows them (space separated).
pub fn keys(s: &Selector) -> Vec<u8> {
    if s.all_keys {
        return b"~*".to_vec();
    }
    join(s.keys.iter().map(|k| k.describe()))
}

/// The selector's channel patterns as ACL GETUSER shows them.
pub fn channels(s: &Selector) -> Vec<u8> {
    if s.all_channels {
        return b"&*".to_vec();
    }
    join(s.channels.iter().map(|c| {
        let mut v = b"&".to_vec();
        v.extend_from_slice(c);
        v
    }))
}

fn join(parts: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(&p);
    }
    out
}

/// Counts the commands of category `flag` allowed (on) and not (off) in `s`.
fn count(cat: &Catalog, s: &Selector, flag: u32) -> (usize, usize) {
    let (mut on, mut off) = (0, 0);
    for id in cat.all() {
        if cat.categories[id] & flag != 0 {
            if s.bit(id) {
                on += 1;
            } else {
                off += 1;
            }
        }
    }
    (on, off)
}

/// The command rules (`ACLDescribeSelectorCommandRules`): start from `+@all` or `-@all`,
/// repeatedly apply the category that best fits what remains, then fix single commands.
pub fn commands(cat: &Catalog, s: &Selector) -> String {
    let additive = !s.future;
    let mut rules = String::new();
    let mut fake = Selector::new(cat, false, false);
    let start = if additive { "-@all" } else { "+@all" };
    rules.push_str(start);
    rules.push(' ');
    let _ = fake.apply(cat, start.as_bytes());
    // What is left to describe: categories are applied inversely to it as they are used.
    let mut temp = s.clone();
    let mut applied = vec![false; cat.category_names.len()];
    loop {
        let mut best = None;
        let (mut mindiff, mut maxsame) = (usize::MAX, 0);
        for (j, _) in cat.category_names.iter().enumerate() {
            if applied[j] {
                continue;
            }
            let (on, off) = count(cat, &temp, 1 << j);
            let (diff, same) = if additive { (off, on) } else { (on, off) };
            if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                best = Some(j);
                mindiff = diff;
                maxsame = same;
            }
        }
        let Some(j) = best else { break };
        let name = cat.category_names[j];
        fake.set_category(cat, 1 << j, additive);
        temp.set_category(cat, 1 << j, !additive);
        rules.push_str(if additive { "+@" } else { "-@" });
        rules.push_str(name);
        rules.push(' ');
        applied[j] = true;
    }
    for &id in &cat.order {
        single(cat, s, &mut fake, id, &mut rules);
        for &sub in &cat.subs[id] {
            single(cat, s, &mut fake, sub, &mut rules);
        }
        if !s.bit(id) {
            if let Some((_, args)) = s.firstargs.iter().find(|(c, _)| *c == id) {
                for a in args {
                    rules.push('+');
                    rules.push_str(&cat.names[id]);
                    rules.push('|');
                    rules.push_str(&String::from_utf8_lossy(a));
                    rules.push(' ');
                }
            }
        }
    }
    rules.pop();
    rules
}

fn single(cat: &Catalog, s: &Selector, fake: &mut Selector, id: usize, rules: &mut String) {
    let user = s.bit(id);
    if user != fake.bit(id) {
        rules.push(if user { '+' } else { '-' });
        rules.push_str(&cat.names[id]);
        rules.push(' ');
        fake.change_perm(cat, id, user);
    }
}
