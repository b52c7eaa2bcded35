//! DEBUG DIGEST and DEBUG DIGEST-VALUE give stock redis-server 7's bytes for the same dataset
//! (every type and encoding, several databases, keys with a TTL), and LOLWUT's replies.

mod common;

use common::{pair, show, Raw, Server, StockRedis};

const SHARDS: usize = 3;

fn same(a: &mut Raw, b: &mut Raw, args: &[&str]) -> Vec<u8> {
    let argv: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    let (ra, rb) = (a.call(&argv), b.call(&argv));
    assert_eq!(show(&ra), show(&rb), "{args:?}");
    rb
}

#[test]
fn digests_match_stock() {
    let debug = ["--enable-debug-command", "yes"];
    let ours = Server::start(SHARDS, &debug);
    let stock = StockRedis::start(&debug);
    let (mut a, mut b) = pair(&ours, &stock, false);
    let (a, b) = (&mut a, &mut b);
    let empty = same(a, b, &["DEBUG", "DIGEST"]);
    assert_eq!(
        show(&empty),
        show(b"+0000000000000000000000000000000000000000\r\n")
    );
    let big: Vec<String> = (0..300).map(|i| format!("member-{i}")).collect();
    let mut cmds: Vec<Vec<String>> = vec![
        vec!["SET".into(), "str".into(), "hello".into()],
        vec!["SET".into(), "int".into(), "12345".into()],
        vec![
            "SET".into(),
            "ttl".into(),
            "x".into(),
            "EX".into(),
            "1000".into(),
        ],
        vec![
            "RPUSH".into(),
            "list".into(),
            "a".into(),
            "1".into(),
            "b".into(),
        ],
        vec![
            "SADD".into(),
            "intset".into(),
            "3".into(),
            "1".into(),
            "2".into(),
        ],
        vec![
            "SADD".into(),
            "strset".into(),
            "x".into(),
            "y".into(),
            "z".into(),
        ],
        vec![
            "ZADD".into(),
            "zsmall".into(),
            "1.5".into(),
            "a".into(),
            "2".into(),
            "7".into(),
            "inf".into(),
            "c".into(),
        ],
        vec![
            "HSET".into(),
            "hsmall".into(),
            "f".into(),
            "v".into(),
            "n".into(),
            "1".into(),
        ],
        vec![
            "XADD".into(),
            "stream".into(),
            "1-1".into(),
            "f".into(),
            "v".into(),
        ],
        vec![
            "XADD".into(),
            "stream".into(),
            "2-5".into(),
            "a".into(),
            "1".into(),
            "b".into(),
            "2".into(),
        ],
        vec![
            "XGROUP".into(),
            "CREATE".into(),
            "stream".into(),
            "g".into(),
            "0".into(),
        ],
        vec!["SELECT".into(), "3".into()],
        vec!["SET".into(), "in3".into(), "v".into()],
        vec!["SELECT".into(), "0".into()],
    ];
    let mut z = vec!["ZADD".to_string(), "zbig".into()];
    let mut h = vec!["HSET".to_string(), "hbig".into()];
    let mut s = vec!["SADD".to_string(), "sbig".into()];
    let mut l = vec!["RPUSH".to_string(), "lbig".into()];
    for (i, m) in big.iter().enumerate() {
        z.extend([format!("{}.25", i % 17), m.clone()]);
        h.extend([m.clone(), i.to_string()]);
        s.push(m.clone());
        l.push(m.clone());
    }
    cmds.extend([z, h, s, l]);
    for c in &cmds {
        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
        same(a, b, &refs);
    }
    same(a, b, &["DEBUG", "DIGEST"]);
    same(
        a,
        b,
        &[
            "DEBUG",
            "DIGEST-VALUE",
            "str",
            "int",
            "ttl",
            "list",
            "intset",
            "strset",
            "zsmall",
            "hsmall",
            "stream",
            "zbig",
            "hbig",
            "sbig",
            "lbig",
            "nosuch",
        ],
    );
    same(a, b, &["DEBUG", "DIGEST-VALUE"]);
    // Changes show.
    same(a, b, &["SET", "str", "hellO"]);
    same(a, b, &["DEBUG", "DIGEST"]);
    same(a, b, &["SWAPDB", "0", "3"]);
    same(a, b, &["DEBUG", "DIGEST"]);
    same(a, b, &["FLUSHALL"]);
    same(a, b, &["DEBUG", "DIGEST"]);
}

#[test]
fn lolwut_matches_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        same(&mut a, &mut b, &["LOLWUT"]);
        same(&mut a, &mut b, &["LOLWUT", "VERSION", "7"]);
        same(&mut a, &mut b, &["LOLWUT", "VERSION", "x"]);
        same(&mut a, &mut b, &["LOLWUT", "VERSION", "1", "2"]);
        same(&mut a, &mut b, &["LOLWUT", "foo"]);
        same(&mut a, &mut b, &["LOLWUT", "VERSION", "5", "x"]);
        // Version 5's art is random below its first rows: same size, same first line, same
        // trailer.
        for args in [
            &[&b"LOLWUT"[..], b"VERSION", b"5"][..],
            &[b"LOLWUT", b"VERSION", b"5", b"30", b"4", b"3"],
            &[b"LOLWUT", b"VERSION", b"5", b"0", b"0", b"500"],
        ] {
            let (ra, rb) = (a.call(args), b.call(args));
            let lines = |r: &[u8]| -> Vec<String> {
                String::from_utf8_lossy(r)
                    .lines()
                    .map(str::to_string)
                    .collect()
            };
            let (la, lb) = (lines(&ra), lines(&rb));
            assert_eq!(la.len(), lb.len(), "{}", show(&ra));
            // Squares two rows down shift by up to a third of a side: with big squares the
            // first text rows are fixed.
            if args.len() < 6 {
                assert_eq!(la[0], lb[0]);
                assert_eq!(la[1], lb[1]);
            }
            assert_eq!(la.last(), lb.last());
            let widths = |l: &[String]| l.iter().map(|s| s.chars().count()).collect::<Vec<_>>();
            assert_eq!(widths(&la), widths(&lb));
            let trailer = "Georg Nees - schotter, plotter on paper, 1968. Redis ver. 7.0.15";
            assert_eq!(la[la.len() - 2], trailer);
            assert_eq!(lb[lb.len() - 2], trailer);
        }
    }
}

#[test]
fn debug_subcommands_match_stock() {
    let debug = ["--enable-debug-command", "yes"];
    let ours = Server::start(SHARDS, &debug);
    let stock = StockRedis::start(&debug);
    let (mut a, mut b) = pair(&ours, &stock, false);
    let (a, b) = (&mut a, &mut b);
    for args in [
        &["DEBUG", "STRINGMATCH-TEST"][..],
        &["HSET", "h", "f", "v"],
        &["DEBUG", "LISTPACK", "h"],
        &["DEBUG", "LISTPACK", "nosuch"],
        &["SET", "s", "x"],
        &["DEBUG", "LISTPACK", "s"],
    ] {
        same(a, b, args);
    }
}
