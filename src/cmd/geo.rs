//! GEO commands (Redis 7.0's geo.c): positions kept as sorted set scores (52-bit geohashes,
//! `types::geohash`), GEOADD as the ZADD it amounts to, and the searches GEOSEARCH /
//! GEORADIUS* run over the nine cells around the centre, with their STORE forms.

use crate::acl;
use crate::cmd::zset::{parse_score, zadd_generic};
use crate::cmd::{flag::*, CommandSpec, Ctx};
use crate::config::keyspace_events as class;
use crate::db::NO_EXPIRE;
use crate::error::{CmdResult, Error};
use crate::resp::{Args, OwnedArgs, Reply};
use crate::types::geohash::{self, Search, Shape};
use crate::types::zset::{AddFlags, ScoreBound, ScoreRange, ZSet};
use crate::types::Value;
use crate::util::num::{arg_i64, format_f6, format_fixed4, format_human};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("geoadd", -5, WRITE | DENYOOM, geoadd)
        .acl(&["@geo"])
        .doc("geo", "3.2.0", "Add one or more geospatial items in the geospatial index represented using a sorted set"),
    CommandSpec::keyed("geodist", -4, READONLY, geodist)
        .acl(&["@geo"])
        .doc("geo", "3.2.0", "Returns the distance between two members of a geospatial index"),
    CommandSpec::keyed("geohash", -2, READONLY, geohash_cmd)
        .acl(&["@geo"])
        .doc("geo", "3.2.0", "Returns members of a geospatial index as standard geohash strings"),
    CommandSpec::keyed("geopos", -2, READONLY, geopos)
        .acl(&["@geo"])
        .doc("geo", "3.2.0", "Returns longitude and latitude of members of a geospatial index"),
    CommandSpec::keyed("georadius", -6, WRITE | DENYOOM | MOVABLE_KEYS, georadius)
        .access(acl::READ, acl::WRITE)
        .key_finder(georadius_keys)
        .acl(&["@geo"])
        .doc("geo", "3.2.0", "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a point"),
    CommandSpec::keyed("georadius_ro", -6, READONLY, georadius_ro)
        .acl(&["@geo"])
        .doc("geo", "3.2.10", "A read-only variant for GEORADIUS"),
    CommandSpec::keyed("georadiusbymember", -5, WRITE | DENYOOM | MOVABLE_KEYS, georadiusbymember)
        .access(acl::READ, acl::WRITE)
        .key_finder(georadius_keys)
        .acl(&["@geo"])
        .doc("geo", "3.2.0", "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a member"),
    CommandSpec::keyed("georadiusbymember_ro", -5, READONLY, georadiusbymember_ro)
        .acl(&["@geo"])
        .doc("geo", "3.2.10", "A read-only variant for GEORADIUSBYMEMBER"),
    CommandSpec::keyed("geosearch", -7, READONLY, geosearch)
        .acl(&["@geo"])
        .doc("geo", "6.2.0", "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle."),
    CommandSpec::keyed("geosearchstore", -8, WRITE | DENYOOM, geosearchstore)
        .keys(1, 2, 1)
        .access(acl::WRITE, acl::READ)
        .acl(&["@geo"])
        .doc("geo", "6.2.0", "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle, and store the result in another key."),
];

/// GEORADIUS[BYMEMBER]'s keys: the source, the keys its key specs name (after the first
/// STORE and the first STOREDIST, from argument 5 or 6 on: COMMAND GETKEYS and ACL use
/// them) and the key it writes (after the last of either, from argument 5 on:
/// `georadiusGetKeys`, which cluster routing uses), each once.
fn georadius_keys(a: &Args<'_>) -> Option<Vec<usize>> {
    let from = if a.is(0, "GEORADIUS") { 6 } else { 5 };
    let mut keys = vec![1];
    for word in ["STORE", "STOREDIST"] {
        if let Some(i) = (from..a.len().saturating_sub(1)).find(|&i| a.is(i, word)) {
            keys.push(i + 1);
        }
    }
    let mut written = None;
    let mut i = 5;
    while i < a.len() {
        if (a.is(i, "STORE") || a.is(i, "STOREDIST")) && i + 1 < a.len() {
            written = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    if let Some(w) = written.filter(|w| !keys.contains(w)) {
        keys.push(w);
    }
    Some(keys)
}

// ---- argument helpers ----

fn arg_double(arg: &[u8], msg: &'static str) -> Result<f64, Error> {
    parse_score(arg).ok_or(Error::msg(msg))
}

/// A (longitude, latitude) pair within the indexable limits.
fn lon_lat(a: &Args, at: usize) -> Result<[f64; 2], Error> {
    let lon = arg_double(a.get(at), "value is not a valid float")?;
    let lat = arg_double(a.get(at + 1), "value is not a valid float")?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        let mut text = b"invalid longitude,latitude pair ".to_vec();
        format_f6(lon, &mut text);
        text.push(b',');
        format_f6(lat, &mut text);
        return Err(Error::msg(String::from_utf8_lossy(&text).into_owned()));
    }
    Ok([lon, lat])
}

/// Metres per unit.
fn unit(arg: &[u8]) -> Result<f64, Error> {
    Ok(match arg.to_ascii_lowercase().as_slice() {
        b"m" => 1.0,
        b"km" => 1000.0,
        b"ft" => 0.3048,
        b"mi" => 1609.34,
        _ => {
            return Err(Error::msg(
                "unsupported unit provided. please use M, KM, FT, MI",
            ))
        }
    })
}

/// `radius unit`: (radius, metres per unit).
fn radius(a: &Args, at: usize) -> Result<(f64, f64), Error> {
    let r = arg_double(a.get(at), "need numeric radius")?;
    if r < 0.0 {
        return Err(Error::msg("radius cannot be negative"));
    }
    Ok((r, unit(a.get(at + 1))?))
}

/// `width height unit`.
fn bbox(a: &Args, at: usize) -> Result<(f64, f64, f64), Error> {
    let w = arg_double(a.get(at), "need numeric width")?;
    let h = arg_double(a.get(at + 1), "need numeric height")?;
    if h < 0.0 || w < 0.0 {
        return Err(Error::msg("height or width cannot be negative"));
    }
    Ok((w, h, unit(a.get(at + 2))?))
}

fn human(out: &mut Reply, v: f64) {
    let mut text = Vec::with_capacity(24);
    format_human(v, &mut text);
    if out.resp3 {
        out.raw(b",");
        out.raw(&text);
        out.raw(b"\r\n");
    } else {
        out.bulk(&text);
    }
}

fn distance_reply(out: &mut Reply, d: f64) {
    let mut text = Vec::with_capacity(24);
    format_fixed4(d, &mut text);
    out.bulk(&text);
}

// ---- GEOADD, GEODIST, GEOHASH, GEOPOS ----

/// GEOADD key [NX|XX] [CH] lon lat member ...: runs and propagates as the ZADD it amounts to.
fn geoadd(c: &mut Ctx, a: &Args) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    let mut at = 2;
    while at < a.len() {
        if a.is(at, "NX") {
            nx = true;
        } else if a.is(at, "XX") {
            xx = true;
        } else if !a.is(at, "CH") {
            break;
        }
        at += 1;
    }
    if !(a.len() - at).is_multiple_of(3) || (nx && xx) {
        return Err(Error::Syntax);
    }
    let mut words: Vec<Vec<u8>> = Vec::with_capacity(at + (a.len() - at) / 3 * 2);
    words.push(b"zadd".to_vec());
    words.extend(a.rest(1).take(at - 1).map(<[u8]>::to_vec));
    for i in (at..a.len()).step_by(3) {
        let [lon, lat] = lon_lat(a, i)?;
        let score = geohash::score_of(lon, lat).unwrap_or(0);
        words.push(itoa::Buffer::new().format(score).as_bytes().to_vec());
        words.push(a.get(i + 2).to_vec());
    }
    let zadd = OwnedArgs::from_iter(words.iter().map(Vec::as_slice));
    zadd_generic(c, &zadd.args(), AddFlags::default())?;
    c.propagate(&words.iter().map(Vec::as_slice).collect::<Vec<_>>());
    Ok(())
}

fn geodist(c: &mut Ctx, a: &Args) -> CmdResult {
    let to_meter = match a.len() {
        4 => 1.0,
        5 => unit(a.get(4))?,
        _ => return Err(Error::Syntax),
    };
    let Some(z) = c.db.read_as::<ZSet>(a.get(1), c.now)? else {
        c.out.null();
        return Ok(());
    };
    match (z.score(a.get(2)), z.score(a.get(3))) {
        (Some(s1), Some(s2)) => {
            let [x1, y1] = geohash::decode_score(s1);
            let [x2, y2] = geohash::decode_score(s2);
            distance_reply(c.out, geohash::distance(x1, y1, x2, y2) / to_meter);
        }
        _ => c.out.null(),
    }
    Ok(())
}

fn geohash_cmd(c: &mut Ctx, a: &Args) -> CmdResult {
    let z = c.db.read_as::<ZSet>(a.get(1), c.now)?;
    c.out.array(a.len() - 2);
    for m in a.rest(2) {
        match z.and_then(|z| z.score(m)) {
            Some(s) => c.out.bulk(&geohash::standard_geohash(s)),
            None => c.out.null(),
        }
    }
    Ok(())
}

fn geopos(c: &mut Ctx, a: &Args) -> CmdResult {
    let z = c.db.read_as::<ZSet>(a.get(1), c.now)?;
    c.out.array(a.len() - 2);
    for m in a.rest(2) {
        match z.and_then(|z| z.score(m)) {
            Some(s) => {
                let [lon, lat] = geohash::decode_score(s);
                c.out.array(2);
                human(c.out, lon);
                human(c.out, lat);
            }
            None => c.out.null_array(),
        }
    }
    Ok(())
}

// ---- searches ----

/// Which search command runs (`georadiusGeneric`'s flags).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// GEORADIUS[_RO]: around coordinates.
    Coords { store_ok: bool },
    /// GEORADIUSBYMEMBER[_RO]: around a member.
    Member { store_ok: bool },
    /// GEOSEARCH / GEOSEARCHSTORE.
    Search { store: bool },
}

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A point found: member, position, distance (metres), score.
struct Found {
    member: Vec<u8>,
    xy: [f64; 2],
    dist: f64,
    score: f64,
}

/// The members within `search`, cell by cell in Redis's order, stopping once `limit` (ANY)
/// were found.
fn points(z: &ZSet, search: &Search, limit: usize) -> Vec<Found> {
    let mut found = Vec::new();
    for cell in search.cells() {
        if limit > 0 && found.len() >= limit {
            break;
        }
        // Every score inside the cell: [its lowest, the next cell's lowest).
        let min = cell.align52() as f64;
        let max = geohash::HashBits {
            bits: cell.bits + 1,
            step: cell.step,
        }
        .align52() as f64;
        let (lo, hi) = z.score_ranks(&ScoreRange {
            min: ScoreBound {
                value: min,
                exclusive: false,
            },
            max: ScoreBound {
                value: max,
                exclusive: true,
            },
        });
        for (member, score) in z.range(lo, hi, false) {
            if let Some((xy, dist)) = search.within(score) {
                found.push(Found {
                    member: member.to_vec(),
                    xy,
                    dist,
                    score,
                });
            }
            if limit > 0 && found.len() >= limit {
                break;
            }
        }
    }
    found
}

fn georadius(c: &mut Ctx, a: &Args) -> CmdResult {
    search(c, a, 1, Kind::Coords { store_ok: true })
}

fn georadius_ro(c: &mut Ctx, a: &Args) -> CmdResult {
    search(c, a, 1, Kind::Coords { store_ok: false })
}

fn georadiusbymember(c: &mut Ctx, a: &Args) -> CmdResult {
    search(c, a, 1, Kind::Member { store_ok: true })
}

fn georadiusbymember_ro(c: &mut Ctx, a: &Args) -> CmdResult {
    search(c, a, 1, Kind::Member { store_ok: false })
}

fn geosearch(c: &mut Ctx, a: &Args) -> CmdResult {
    search(c, a, 1, Kind::Search { store: false })
}

fn geosearchstore(c: &mut Ctx, a: &Args) -> CmdResult {
    search(c, a, 2, Kind::Search { store: true })
}

/// The position of `member` in `z`, or Redis's error.
fn member_xy(z: &ZSet, member: &[u8]) -> Result<[f64; 2], Error> {
    z.score(member)
        .map(geohash::decode_score)
        .ok_or(Error::msg("could not decode requested zset member"))
}

/// `georadiusGeneric`: the arguments are checked in Redis's order (the source's type first,
/// then the fixed arguments, then the options left to right), so the same error wins.
fn search(c: &mut Ctx, a: &Args, src: usize, kind: Kind) -> CmdResult {
    let z = c.db.read_as::<ZSet>(a.get(src), c.now)?;
    let mut xy = [0.0; 2];
    let mut shape = Shape::Radius(0.0);
    let mut conversion = 1.0;
    let mut store: Option<&[u8]> = None;
    let mut storedist = false;
    let base = match kind {
        Kind::Coords { .. } => {
            xy = lon_lat(a, 2)?;
            let (r, conv) = radius(a, 4)?;
            (shape, conversion) = (Shape::Radius(r), conv);
            6
        }
        Kind::Member { .. } => {
            if let Some(z) = z {
                xy = member_xy(z, a.get(2))?;
                let (r, conv) = radius(a, 3)?;
                (shape, conversion) = (Shape::Radius(r), conv);
            }
            5
        }
        Kind::Search { store: true } => {
            store = Some(a.get(1));
            3
        }
        Kind::Search { store: false } => 2,
    };
    let is_search = matches!(kind, Kind::Search { .. });
    let store_ok = matches!(
        kind,
        Kind::Coords { store_ok: true } | Kind::Member { store_ok: true }
    );
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut count: i64 = 0;
    let mut i = base;
    while i < a.len() {
        let left = a.len() - i - 1;
        if a.is(i, "WITHDIST") {
            withdist = true;
        } else if a.is(i, "WITHHASH") {
            withhash = true;
        } else if a.is(i, "WITHCOORD") {
            withcoord = true;
        } else if a.is(i, "ANY") {
            any = true;
        } else if a.is(i, "ASC") {
            sort = Sort::Asc;
        } else if a.is(i, "DESC") {
            sort = Sort::Desc;
        } else if a.is(i, "COUNT") && left >= 1 {
            count = arg_i64(a.get(i + 1))?;
            if count <= 0 {
                return Err(Error::msg("COUNT must be > 0"));
            }
            i += 1;
        } else if (a.is(i, "STORE") || a.is(i, "STOREDIST")) && left >= 1 && store_ok {
            store = Some(a.get(i + 1));
            storedist = a.is(i, "STOREDIST");
            i += 1;
        } else if a.is(i, "STOREDIST") && kind == (Kind::Search { store: true }) {
            storedist = true;
        } else if a.is(i, "FROMMEMBER") && left >= 1 && is_search && !fromloc {
            if let Some(z) = z {
                xy = member_xy(z, a.get(i + 1))?;
            }
            frommember = true;
            i += 1;
        } else if a.is(i, "FROMLONLAT") && left >= 2 && is_search && !frommember {
            xy = lon_lat(a, i + 1)?;
            fromloc = true;
            i += 2;
        } else if a.is(i, "BYRADIUS") && left >= 2 && is_search && !bybox {
            let (r, conv) = radius(a, i + 1)?;
            (shape, conversion) = (Shape::Radius(r), conv);
            byradius = true;
            i += 2;
        } else if a.is(i, "BYBOX") && left >= 3 && is_search && !byradius {
            let (width, height, conv) = bbox(a, i + 1)?;
            (shape, conversion) = (Shape::Box { width, height }, conv);
            bybox = true;
            i += 3;
        } else {
            return Err(Error::Syntax);
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        return Err(Error::msg(format!(
            "{} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if kind == (Kind::Search { store: true }) {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    let name = String::from_utf8_lossy(a.get(0));
    if is_search && !(frommember || fromloc) {
        return Err(Error::msg(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if is_search && !(byradius || bybox) {
        return Err(Error::msg(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(Error::msg("the ANY argument requires COUNT argument"));
    }
    let Some(z) = z else {
        match store {
            Some(dst) => {
                let deleted = c.db.delete(dst, c.now);
                c.dirty(deleted as u64);
                if deleted {
                    c.notify(class::GENERIC, "del", dst);
                }
                c.out.int(0);
            }
            None => c.out.array(0),
        }
        return Ok(());
    };
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let search = Search {
        xy,
        shape,
        conversion,
    };
    let mut found = points(z, &search, if any { count as usize } else { 0 });
    if found.is_empty() && store.is_none() {
        c.out.array(0);
        return Ok(());
    }
    let returned = if count == 0 {
        found.len()
    } else {
        found.len().min(count as usize)
    };
    // Everything returned: a stable sort, as glibc's qsort (a merge sort) keeps equal
    // distances in search order; only the first COUNT: Redis's partial quicksort.
    if sort != Sort::None {
        let mut cmp = |x: &Found, y: &Found| {
            let o = x
                .dist
                .partial_cmp(&y.dist)
                .unwrap_or(std::cmp::Ordering::Equal);
            if sort == Sort::Desc {
                o.reverse()
            } else {
                o
            }
        };
        if returned == found.len() {
            found.sort_by(cmp);
        } else if returned > 0 {
            crate::util::pqsort::pqsort(&mut found, 0, returned - 1, &mut cmp);
        }
    }
    found.truncate(returned);
    for f in &mut found {
        f.dist /= conversion;
    }
    match store {
        None => {
            let options = withdist as usize + withhash as usize + withcoord as usize;
            c.out.array(found.len());
            for f in &found {
                if options > 0 {
                    c.out.array(options + 1);
                }
                c.out.bulk(&f.member);
                if withdist {
                    distance_reply(c.out, f.dist);
                }
                if withhash {
                    c.out.int(f.score as i64);
                }
                if withcoord {
                    c.out.array(2);
                    human(c.out, f.xy[0]);
                    human(c.out, f.xy[1]);
                }
            }
        }
        Some(dst) => {
            let n = found.len();
            if n > 0 {
                let pairs = found
                    .into_iter()
                    .map(|f| (f.member, if storedist { f.dist } else { f.score }))
                    .collect();
                let zs = ZSet::from_pairs(pairs, c.limits().zset);
                c.db.set(dst, Value::ZSet(zs), NO_EXPIRE, c.now);
                c.dirty(n as u64);
                let event = match kind {
                    Kind::Search { .. } => "geosearchstore",
                    _ => "georadiusstore",
                };
                c.notify(class::ZSET, event, dst);
            } else {
                let deleted = c.db.delete(dst, c.now);
                c.dirty(deleted as u64);
                if deleted {
                    c.notify(class::GENERIC, "del", dst);
                }
            }
            c.out.int(n as i64);
        }
    }
    Ok(())
}
