//! GEO commands byte-compared with a stock redis-server 7: fixed cases (every option and error
//! text), a seeded random run of searches over small (listpack) and big (skiplist) sets with
//! centres and radii from metres to thousands of kilometres, near the poles and the
//! antimeridian, in RESP2 and RESP3; COMMAND INFO; CROSSSLOT of the STORE forms in cluster mode.

mod common;

use common::cluster::{rcall, Node};
use common::{pair, show, Raw, Rng, Server, StockRedis};

const SHARDS: usize = 3;

fn same(a: &mut Raw, b: &mut Raw, args: &[&str]) -> Vec<u8> {
    let argv: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    let (ra, rb) = (a.call(&argv), b.call(&argv));
    assert_eq!(show(&ra), show(&rb), "{args:?}");
    rb
}

/// Points with distinct coordinates: a cluster around Sicily, a band along the antimeridian,
/// points near both Mercator limits, and scattered ones.
fn points(rng: &mut Rng, n: usize) -> Vec<(f64, f64)> {
    let mut unit = || rng.below(1_000_000) as f64 / 1_000_000.0;
    (0..n)
        .map(|i| match i % 4 {
            0 => (13.0 + unit() * 3.0, 37.0 + unit() * 2.0),
            1 => (
                if i % 8 == 1 { 179.0 } else { -180.0 } + unit(),
                unit() * 10.0 - 5.0,
            ),
            2 => (
                unit() * 360.0 - 180.0,
                if i % 8 == 2 {
                    84.0 + unit()
                } else {
                    -84.0 - unit()
                },
            ),
            _ => (unit() * 360.0 - 180.0, unit() * 170.0 - 85.0),
        })
        .collect()
}

fn fmt(v: f64) -> String {
    format!("{v:.6}")
}

fn load(a: &mut Raw, b: &mut Raw, key: &str, pts: &[(f64, f64)]) {
    for chunk in pts.chunks(50).enumerate() {
        let mut args = vec!["GEOADD".to_string(), key.to_string()];
        for (j, (lon, lat)) in chunk.1.iter().enumerate() {
            args.extend([fmt(*lon), fmt(*lat), format!("m{}", chunk.0 * 50 + j)]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(same(a, b, &refs)[0], b':', "{refs:?}");
    }
}

#[test]
fn fixed_cases_match_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        let (a, b) = (&mut a, &mut b);
        same(a, b, &["FLUSHALL"]);
        let cases: &[&[&str]] = &[
            &[
                "GEOADD",
                "Sicily",
                "13.361389",
                "38.115556",
                "Palermo",
                "15.087269",
                "37.502669",
                "Catania",
            ],
            &["GEOADD", "Sicily", "13.361389", "38.115556", "Palermo"],
            &[
                "GEOADD",
                "Sicily",
                "CH",
                "13.5",
                "38.1",
                "Palermo",
                "14",
                "37",
                "Agrigento",
            ],
            &[
                "GEOADD", "Sicily", "NX", "13", "38", "Palermo", "14.5", "37.1", "Siracusa",
            ],
            &[
                "GEOADD",
                "Sicily",
                "XX",
                "CH",
                "13.361389",
                "38.115556",
                "Palermo",
                "1",
                "1",
                "Nowhere",
            ],
            &["GEOADD", "Sicily", "NX", "XX", "1", "1", "x"],
            &["GEOADD", "Sicily", "GT", "1", "1", "x"],
            &["GEOADD", "Sicily", "1", "1"],
            &["GEOADD", "Sicily", "1", "1", "x", "2"],
            &["GEOADD", "Sicily", "200", "1", "x"],
            &["GEOADD", "Sicily", "1", "85.06", "x"],
            &["GEOADD", "Sicily", "-180.5", "-86", "x"],
            &["GEOADD", "Sicily", "1e400", "1", "x"],
            &["GEOADD", "Sicily", "abc", "1", "x"],
            &["GEOADD", "Sicily", "0x10", "1", "hex"],
            &[
                "GEOADD",
                "Sicily",
                "180",
                "85.05112878",
                "corner",
                "-180",
                "-85.05112878",
                "corner2",
            ],
            &["GEOADD", "Sicily"],
            &["ZRANGE", "Sicily", "0", "-1", "WITHSCORES"],
            &[
                "GEOPOS", "Sicily", "Palermo", "nosuch", "Catania", "corner", "corner2", "hex",
            ],
            &["GEOPOS", "nokey", "a", "b"],
            &["GEOPOS", "Sicily"],
            &[
                "GEOHASH", "Sicily", "Palermo", "Catania", "nosuch", "corner", "corner2",
            ],
            &["GEOHASH", "nokey", "a"],
            &["GEODIST", "Sicily", "Palermo", "Catania"],
            &["GEODIST", "Sicily", "Palermo", "Catania", "km"],
            &["GEODIST", "Sicily", "Palermo", "Catania", "MI"],
            &["GEODIST", "Sicily", "Palermo", "Catania", "ft"],
            &["GEODIST", "Sicily", "Palermo", "Catania", "yd"],
            &["GEODIST", "Sicily", "Palermo", "Palermo"],
            &["GEODIST", "Sicily", "Palermo", "nosuch"],
            &["GEODIST", "nokey", "a", "b"],
            &["GEODIST", "Sicily", "Palermo", "Catania", "km", "x"],
            &["GEODIST", "Sicily", "corner", "corner2", "km"],
            &[
                "ZADD",
                "odd",
                "-5",
                "neg",
                "inf",
                "inf",
                "-inf",
                "ninf",
                "1e300",
                "huge",
                "4503599627370496",
                "two52",
            ],
            &["GEOPOS", "odd", "neg", "inf", "ninf", "huge", "two52"],
            &["GEOHASH", "odd", "neg", "inf", "ninf", "huge", "two52"],
            &["GEODIST", "odd", "neg", "huge"],
            &["SET", "str", "x"],
            &["GEOADD", "str", "1", "1", "x"],
            &["GEOPOS", "str", "x"],
            &["GEOHASH", "str", "x"],
            &["GEODIST", "str", "x", "y"],
            &["GEODIST", "str", "x", "y", "yd"],
            &["GEORADIUS", "str", "15", "37", "200", "km"],
            &[
                "GEOSEARCH",
                "str",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
            ],
            // GEORADIUS and GEORADIUS_RO.
            &["GEORADIUS", "Sicily", "15", "37", "200", "km"],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "WITHDIST",
                "WITHCOORD",
                "WITHHASH",
            ],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "WITHDIST",
                "ASC",
            ],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "WITHDIST",
                "DESC",
            ],
            &["GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "1"],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "COUNT",
                "2",
                "DESC",
                "WITHCOORD",
            ],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "COUNT",
                "1",
                "ANY",
            ],
            &["GEORADIUS", "Sicily", "15", "37", "200", "km", "ANY"],
            &["GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "0"],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "COUNT",
                "-1",
            ],
            &["GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "x"],
            &["GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT"],
            &["GEORADIUS", "Sicily", "15", "37", "200", "km", "BOGUS"],
            &["GEORADIUS", "Sicily", "15", "37", "-1", "km"],
            &["GEORADIUS", "Sicily", "15", "37", "x", "km"],
            &["GEORADIUS", "Sicily", "15", "37", "1", "yd"],
            &["GEORADIUS", "Sicily", "15", "95", "1", "km"],
            &["GEORADIUS", "Sicily", "15", "37", "0", "km"],
            &[
                "GEORADIUS",
                "Sicily",
                "13.361389",
                "38.115556",
                "0",
                "m",
                "WITHDIST",
            ],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "STORE",
                "dst",
            ],
            &["ZRANGE", "dst", "0", "-1", "WITHSCORES"],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "STOREDIST",
                "dst",
                "COUNT",
                "1",
            ],
            &["ZRANGE", "dst", "0", "-1", "WITHSCORES"],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "STORE",
                "dst",
                "WITHDIST",
            ],
            &["GEORADIUS", "Sicily", "0", "0", "1", "km", "STORE", "dst"],
            &["EXISTS", "dst"],
            &["SET", "dst", "x"],
            &["GEORADIUS", "nokey", "0", "0", "1", "km", "STORE", "dst"],
            &["EXISTS", "dst"],
            &["GEORADIUS", "nokey", "0", "0", "1", "km"],
            &["GEORADIUS", "nokey", "0", "0", "1", "km", "ANY"],
            &[
                "GEORADIUS_RO",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "WITHDIST",
            ],
            &[
                "GEORADIUS_RO",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "STORE",
                "dst",
            ],
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "FROMMEMBER",
                "Palermo",
            ],
            // GEORADIUSBYMEMBER.
            &[
                "GEORADIUSBYMEMBER",
                "Sicily",
                "Palermo",
                "200",
                "km",
                "WITHDIST",
            ],
            &[
                "GEORADIUSBYMEMBER",
                "Sicily",
                "Palermo",
                "200",
                "km",
                "WITHDIST",
                "WITHHASH",
                "COUNT",
                "2",
            ],
            &["GEORADIUSBYMEMBER", "Sicily", "nosuch", "200", "km"],
            &["GEORADIUSBYMEMBER", "Sicily", "Palermo", "-2", "km"],
            &["GEORADIUSBYMEMBER", "nokey", "Palermo", "x", "km"],
            &[
                "GEORADIUSBYMEMBER",
                "nokey",
                "Palermo",
                "x",
                "km",
                "WITHDIST",
                "STORE",
                "d2",
            ],
            &[
                "GEORADIUSBYMEMBER",
                "Sicily",
                "Palermo",
                "100",
                "km",
                "STORE",
                "d2",
            ],
            &["ZRANGE", "d2", "0", "-1", "WITHSCORES"],
            &[
                "GEORADIUSBYMEMBER_RO",
                "Sicily",
                "Palermo",
                "100",
                "km",
                "STORE",
                "d2",
            ],
            &[
                "GEORADIUSBYMEMBER_RO",
                "Sicily",
                "Catania",
                "100",
                "mi",
                "WITHCOORD",
            ],
            // GEOSEARCH and GEOSEARCHSTORE.
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "ASC",
                "WITHDIST",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMMEMBER",
                "Palermo",
                "BYBOX",
                "400",
                "400",
                "km",
                "DESC",
                "WITHCOORD",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "200",
                "200",
                "km",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "200",
                "200",
                "km",
                "COUNT",
                "1",
                "ANY",
            ],
            &["GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37"],
            &["geosearch", "Sicily", "BYRADIUS", "1", "km", "ASC"],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "FROMMEMBER",
                "Palermo",
                "BYRADIUS",
                "1",
                "km",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "1",
                "km",
                "BYBOX",
                "1",
                "1",
                "km",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMMEMBER",
                "nosuch",
                "BYRADIUS",
                "1",
                "km",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "-1",
                "1",
                "km",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "1",
                "x",
                "km",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "x",
                "1",
                "km",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "1",
                "1",
                "yd",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "1",
                "km",
                "STORE",
                "x",
            ],
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "1",
                "km",
                "STOREDIST",
            ],
            &[
                "GEOSEARCH",
                "nokey",
                "FROMMEMBER",
                "x",
                "BYRADIUS",
                "1",
                "km",
            ],
            &[
                "GEOSEARCH",
                "nokey",
                "FROMMEMBER",
                "x",
                "BYRADIUS",
                "1",
                "km",
                "ANY",
            ],
            &["GEOSEARCH", "nokey", "FROMMEMBER", "x"],
            &[
                "GEOSEARCHSTORE",
                "d3",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
            ],
            &["ZRANGE", "d3", "0", "-1", "WITHSCORES"],
            &[
                "GEOSEARCHSTORE",
                "d3",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "STOREDIST",
                "COUNT",
                "2",
            ],
            &["ZRANGE", "d3", "0", "-1", "WITHSCORES"],
            &[
                "GEOSEARCHSTORE",
                "d3",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "WITHDIST",
            ],
            &[
                "GEOSEARCHSTORE",
                "d3",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "STORE",
                "x",
            ],
            &[
                "GEOSEARCHSTORE",
                "d3",
                "nokey",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
            ],
            &["EXISTS", "d3"],
            &[
                "GEOSEARCHSTORE",
                "d3",
                "str",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
            ],
            &[
                "GEOSEARCHSTORE",
                "Sicily",
                "Sicily",
                "FROMMEMBER",
                "Palermo",
                "BYRADIUS",
                "100",
                "km",
                "STOREDIST",
            ],
            &["ZRANGE", "Sicily", "0", "-1", "WITHSCORES"],
        ];
        for args in cases {
            same(a, b, args);
        }
        // Equal distances: Redis's partial quicksort decides their order under COUNT.
        for i in 0..45 {
            let (lon, lat) = if i % 3 == 0 {
                ("10", "10")
            } else {
                ("10.001", "10")
            };
            same(a, b, &["GEOADD", "ties", lon, lat, &format!("m{i}")]);
        }
        for count in ["1", "5", "12", "30", "44", "45", "100"] {
            for order in ["ASC", "DESC"] {
                same(
                    a,
                    b,
                    &[
                        "GEORADIUS",
                        "ties",
                        "10",
                        "10",
                        "100",
                        "km",
                        "COUNT",
                        count,
                        order,
                    ],
                );
                same(
                    a,
                    b,
                    &[
                        "GEOSEARCH",
                        "ties",
                        "FROMLONLAT",
                        "10",
                        "10",
                        "BYRADIUS",
                        "100",
                        "km",
                        "COUNT",
                        count,
                        order,
                        "WITHDIST",
                    ],
                );
            }
        }
    }
}

/// Seeded random searches over a listpack set and a skiplist set, every reply compared.
#[test]
fn random_searches_match_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let seed = std::env::var("REDCELL_GEO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6E0_2026u64);
    let mut rng = Rng(seed);
    let (mut a, mut b) = pair(&ours, &stock, false);
    let (a, b) = (&mut a, &mut b);
    let small = points(&mut rng, 100);
    let big = points(&mut rng, 3000);
    load(a, b, "small", &small);
    load(a, b, "big", &big);
    assert_eq!(
        show(&a.call(&[b"OBJECT", b"ENCODING", b"small"])),
        show(b"$8\r\nlistpack\r\n")
    );
    assert_eq!(
        show(&a.call(&[b"OBJECT", b"ENCODING", b"big"])),
        show(b"$8\r\nskiplist\r\n")
    );
    let radii = [
        "0", "1", "150", "2500", "40000", "600000", "3000000", "9000000", "20000000",
    ];
    let mut found = 0;
    for round in 0..600 {
        let key = if round % 3 == 0 { "small" } else { "big" };
        let pts = if key == "small" { &small } else { &big };
        let centre = if rng.below(2) == 0 {
            let p = pts[rng.below(pts.len() as u64) as usize];
            (p.0 + (rng.below(2000) as f64 - 1000.0) / 1000.0, p.1)
        } else {
            (
                rng.below(3600) as f64 / 10.0 - 180.0,
                rng.below(1700) as f64 / 10.0 - 85.0,
            )
        };
        let centre = (centre.0.clamp(-180.0, 180.0), centre.1.clamp(-85.0, 85.0));
        let member = format!("m{}", rng.below(pts.len() as u64));
        let r = radii[rng.below(radii.len() as u64) as usize];
        let unit = ["m", "km", "ft", "mi"][rng.below(4) as usize];
        let mut args: Vec<String> = match rng.below(4) {
            0 => vec![
                "GEORADIUS".into(),
                key.into(),
                fmt(centre.0),
                fmt(centre.1),
                r.into(),
                "m".into(),
            ],
            1 => vec![
                "GEORADIUSBYMEMBER".into(),
                key.into(),
                member.clone(),
                r.into(),
                "m".into(),
            ],
            _ => {
                let mut v = vec!["GEOSEARCH".into(), key.into()];
                if rng.below(2) == 0 {
                    v.extend(["FROMMEMBER".into(), member.clone()]);
                } else {
                    v.extend(["FROMLONLAT".into(), fmt(centre.0), fmt(centre.1)]);
                }
                if rng.below(2) == 0 {
                    v.extend(["BYRADIUS".into(), r.into(), "m".into()]);
                } else {
                    let h = radii[rng.below(radii.len() as u64) as usize];
                    v.extend(["BYBOX".into(), r.into(), h.into(), "m".into()]);
                }
                v
            }
        };
        if let Some(last) = args.iter_mut().rev().find(|s| *s == "m") {
            *last = unit.into();
        }
        for opt in ["WITHDIST", "WITHCOORD", "WITHHASH"] {
            if rng.below(2) == 0 {
                args.push(opt.into());
            }
        }
        match rng.below(3) {
            0 => args.push("ASC".into()),
            1 => args.push("DESC".into()),
            _ => {}
        }
        if rng.below(3) == 0 {
            args.extend(["COUNT".into(), (1 + rng.below(20)).to_string()]);
            if rng.below(3) == 0 {
                args.push("ANY".into());
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        if !same(a, b, &refs).starts_with(b"*0\r\n") {
            found += 1;
        }
        // The STORE forms store what the search found.
        if round % 10 == 0 && !args.iter().any(|s| s.starts_with("WITH")) {
            let mut store = args.clone();
            if store[0] == "GEOSEARCH" {
                store[0] = "GEOSEARCHSTORE".into();
                store.insert(1, "dst".into());
                if rng.below(2) == 0 {
                    store.push("STOREDIST".into());
                }
            } else {
                store.extend([
                    if rng.below(2) == 0 {
                        "STORE"
                    } else {
                        "STOREDIST"
                    }
                    .into(),
                    "dst".into(),
                ]);
            }
            let refs: Vec<&str> = store.iter().map(String::as_str).collect();
            same(a, b, &refs);
            same(a, b, &["ZRANGE", "dst", "0", "-1", "WITHSCORES"]);
        }
    }
    // Most searches find something, so the comparison is not of empty replies.
    assert!(found > 300, "{found} of 600 searches found members");
    for m in ["m0", "m1", "m2", "m3", "m77"] {
        same(a, b, &["GEOPOS", "big", m, "small"]);
        same(a, b, &["GEOHASH", "big", m]);
        same(a, b, &["GEODIST", "big", m, "m5", "km"]);
    }
}

/// GEOADD propagates as the ZADD it amounts to.
#[test]
fn geoadd_propagates_as_zadd() {
    let ours = Server::start(SHARDS, &["--enable-debug-command", "yes"]);
    let mut a = ours.raw();
    assert_eq!(
        show(&a.call(&[b"DEBUG", b"JOURNAL", b"ON"])),
        show(b"+OK\r\n")
    );
    a.call(&[
        b"GEOADD",
        b"k",
        b"CH",
        b"13.361389",
        b"38.115556",
        b"Palermo",
    ]);
    a.call(&[
        b"GEOADD",
        b"k",
        b"NX",
        b"13.361389",
        b"38.115556",
        b"Palermo",
    ]);
    let journal = show(&a.call(&[b"DEBUG", b"JOURNAL", b"READ"]));
    assert!(
        journal.contains("zadd") && journal.contains("CH") && journal.contains("3479099956230698"),
        "{journal}"
    );
    assert!(!journal.to_lowercase().contains("geoadd"), "{journal}");
}

#[test]
fn command_info_matches_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = pair(&ours, &stock, false);
    for name in [
        "geoadd",
        "geodist",
        "geohash",
        "geopos",
        "georadius",
        "georadius_ro",
        "georadiusbymember",
        "georadiusbymember_ro",
        "geosearch",
        "geosearchstore",
    ] {
        let info = |c: &mut Raw| {
            let r = c.call(&[b"COMMAND", b"INFO", name.as_bytes()]);
            let mut pos = 0;
            let common::Node::Agg(_, Some(mut outer)) = common::parse(&r, &mut pos) else {
                panic!("{}", show(&r))
            };
            let common::Node::Agg(_, Some(mut entry)) = outer.remove(0) else {
                panic!("{}", show(&r))
            };
            entry.truncate(7);
            entry
        };
        assert_eq!(info(&mut a), info(&mut b), "COMMAND INFO {name}");
        let keys = |c: &mut Raw, args: &[&[u8]]| {
            let mut argv: Vec<&[u8]> = vec![b"COMMAND", b"GETKEYS"];
            argv.extend(args);
            show(&c.call(&argv))
        };
        for args in [
            &[
                &b"GEORADIUS"[..],
                b"k",
                b"1",
                b"2",
                b"3",
                b"km",
                b"STORE",
                b"d",
                b"STOREDIST",
                b"e",
            ][..],
            &[
                b"GEORADIUSBYMEMBER",
                b"k",
                b"m",
                b"3",
                b"km",
                b"STOREDIST",
                b"d",
            ],
            &[
                b"GEOSEARCHSTORE",
                b"d",
                b"s",
                b"FROMMEMBER",
                b"m",
                b"BYRADIUS",
                b"1",
                b"m",
            ],
        ] {
            assert_eq!(keys(&mut a, args), keys(&mut b, args));
        }
    }
}

/// In cluster mode the STORE forms need both keys in one slot, as Redis Cluster.
#[test]
fn store_forms_crossslot_in_cluster_mode() {
    let ours = Node::redcell();
    let stock = Node::stock();
    for n in [&ours, &stock] {
        n.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        common::cluster::wait_for(
            "cluster_state:ok",
            std::time::Duration::from_secs(20),
            || n.state_ok(),
        );
    }
    let (mut a, mut b) = (Raw::connect(ours.port), Raw::connect(stock.port));
    for args in [
        &["GEOADD", "{a}s", "13.361389", "38.115556", "Palermo"][..],
        &[
            "GEOSEARCHSTORE",
            "{b}d",
            "{a}s",
            "FROMMEMBER",
            "Palermo",
            "BYRADIUS",
            "1",
            "km",
        ],
        &[
            "GEOSEARCHSTORE",
            "{a}d",
            "{a}s",
            "FROMMEMBER",
            "Palermo",
            "BYRADIUS",
            "1",
            "km",
        ],
        &[
            "GEORADIUS",
            "{a}s",
            "13",
            "38",
            "100",
            "km",
            "STORE",
            "{b}d",
        ],
        &[
            "GEORADIUS",
            "{a}s",
            "13",
            "38",
            "100",
            "km",
            "STOREDIST",
            "{a}e",
        ],
        &[
            "GEORADIUSBYMEMBER",
            "{a}s",
            "Palermo",
            "100",
            "km",
            "STORE",
            "{b}d",
        ],
        &["ZRANGE", "{a}e", "0", "-1", "WITHSCORES"],
    ] {
        assert_eq!(rcall(&mut a, args), rcall(&mut b, args), "{args:?}");
    }
}
