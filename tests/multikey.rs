//! Multi-key commands whose keys span shards: same replies as stock Redis, and MSET/MSETNX
//! stay all-or-nothing under concurrency.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{key_on_shard, show, Rng, Server, StockRedis};
use redis::{Connection, Value};

const SHARDS: usize = 3;

/// Keys `{prefix}n` on shards 0, 1, 2 (two each), so every multi-key command below spans all shards.
fn spread(prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for round in 0..2 {
        for s in 0..SHARDS {
            keys.push(key_on_shard(&format!("{prefix}{round}:"), s, SHARDS));
        }
    }
    keys
}

#[test]
fn cross_shard_commands_match_stock_redis() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let mut a = ours.raw();
    let mut b = common::Raw::connect(stock.port);
    let k = spread("mk");
    let s = |i: usize| k[i].as_bytes();
    let script: Vec<Vec<&[u8]>> = vec![
        vec![b"MGET", s(0), s(1), s(2), s(3), s(4), s(5)],
        vec![b"EXISTS", s(0), s(1), s(2)],
        vec![b"MSET", s(0), b"a", s(1), b"b", s(2), b"c", s(3), b"d"],
        vec![b"MGET", s(0), s(1), s(2), s(3), s(4), s(5)],
        vec![b"MGET", s(3), s(3), s(0)],
        vec![b"EXISTS", s(0), s(1), s(2), s(3), s(4), s(5), s(0)],
        vec![b"TOUCH", s(0), s(1), s(2), s(4), s(5)],
        vec![b"MSETNX", s(4), b"e", s(5), b"f", s(0), b"x"],
        vec![b"MGET", s(4), s(5), s(0)],
        vec![b"MSETNX", s(4), b"e", s(5), b"f"],
        vec![b"MGET", s(4), s(5), s(0)],
        vec![b"DEL", s(0), s(1), s(4), b"nosuchkey"],
        vec![b"MGET", s(0), s(1), s(2), s(3), s(4), s(5)],
        vec![b"UNLINK", s(2), s(3), s(5), s(2)],
        vec![b"DBSIZE"],
        vec![b"MSET", s(0), b"1", s(1), b"2", s(0), b"3"],
        vec![b"MGET", s(0), s(1)],
        vec![b"MSET", s(0), b"1", s(1)],
        vec![b"MSETNX", s(2), b"1", s(3)],
        vec![b"DEL", s(0), s(1), s(2), s(3), s(4), s(5)],
        vec![b"DBSIZE"],
    ];
    for cmd in &script {
        let want = b.call(cmd);
        let got = a.call(cmd);
        let shown: Vec<String> = cmd
            .iter()
            .map(|x| String::from_utf8_lossy(x).into())
            .collect();
        assert_eq!(show(&got), show(&want), "{shown:?}");
    }
}

fn get(con: &mut Connection, k: &str) -> Option<String> {
    redis::cmd("GET").arg(k).query(con).unwrap()
}

/// After every cross-shard MSET returns, both keys read back what it wrote, while another
/// writer hammers other keys on the same shards (contending for the same holds).
#[test]
fn mset_is_visible_whole_after_it_returns() {
    let server = Server::start(SHARDS, &[]);
    let (x, y) = (key_on_shard("x", 0, SHARDS), key_on_shard("y", 2, SHARDS));
    let (x2, y2) = (
        key_on_shard("x2-", 2, SHARDS),
        key_on_shard("y2-", 0, SHARDS),
    );
    let rounds = 400;
    let other = {
        let mut con = server.conn();
        let (x2, y2) = (x2.clone(), y2.clone());
        thread::spawn(move || {
            for i in 0..rounds {
                let _: () = redis::cmd("MSET")
                    .arg(&y2)
                    .arg(i)
                    .arg(&x2)
                    .arg(i)
                    .query(&mut con)
                    .unwrap();
            }
        })
    };
    let reader = {
        let mut con = server.conn();
        let (x, y) = (x.clone(), y.clone());
        thread::spawn(move || {
            // Each key only moves forward (one writer, increasing values).
            let (mut last_x, mut last_y) = (-1i64, -1i64);
            for _ in 0..rounds {
                let (vx, vy): (Option<i64>, Option<i64>) =
                    redis::cmd("MGET").arg(&x).arg(&y).query(&mut con).unwrap();
                let (vx, vy) = (vx.unwrap_or(-1), vy.unwrap_or(-1));
                assert!(vx >= last_x && vy >= last_y, "went back: {vx} {vy}");
                (last_x, last_y) = (vx, vy);
            }
        })
    };
    let mut con = server.conn();
    for i in 0..rounds {
        let _: () = redis::cmd("MSET")
            .arg(&x)
            .arg(i)
            .arg(&y)
            .arg(i)
            .query(&mut con)
            .unwrap();
        let want = Some(i.to_string());
        assert_eq!(get(&mut con, &x), want, "x after MSET {i}");
        assert_eq!(get(&mut con, &y), want, "y after MSET {i}");
    }
    other.join().unwrap();
    reader.join().unwrap();
    assert_eq!(get(&mut con, &x2), Some((rounds - 1).to_string()));
    assert_eq!(get(&mut con, &y2), Some((rounds - 1).to_string()));
}

/// Runs `f(side 0)` and `f(side 1)` on two threads, `rounds` times, each side after its own
/// random delay (0-3 ms, about one cross-shard MSET) so they overlap in every way; `check`
/// inspects each round's outcome. Every wait is bounded, so a stuck side fails the test.
fn race<R: Send + 'static>(
    server: &Server,
    rounds: usize,
    reset: impl Fn(&mut Connection),
    f: fn(&mut Connection, usize) -> R,
    mut check: impl FnMut(&mut Connection, [R; 2]),
) {
    let (res_tx, res_rx) = mpsc::channel::<(usize, R)>();
    let mut go = Vec::new();
    let mut threads = Vec::new();
    for side in 0..2 {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        go.push(go_tx);
        let res_tx = res_tx.clone();
        let mut con = server.conn();
        threads.push(thread::spawn(move || {
            let mut rng = Rng(1000 + side as u64);
            while go_rx.recv().is_ok() {
                thread::sleep(Duration::from_micros(rng.below(3000)));
                if res_tx.send((side, f(&mut con, side))).is_err() {
                    break;
                }
            }
        }));
    }
    let mut con = server.conn();
    for round in 0..rounds {
        reset(&mut con);
        for g in &go {
            g.send(()).unwrap();
        }
        let mut results: [Option<R>; 2] = [None, None];
        for _ in 0..2 {
            let (side, r) = res_rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("round {round}: a side did not finish: {e}"));
            results[side] = Some(r);
        }
        let [r0, r1] = results;
        check(&mut con, [r0.unwrap(), r1.unwrap()]);
    }
    drop(go);
    for t in threads {
        t.join().unwrap();
    }
}

fn race_keys() -> (String, String, String) {
    (
        key_on_shard("p", 0, SHARDS),
        key_on_shard("q", 1, SHARDS),
        key_on_shard("r", 2, SHARDS),
    )
}

/// Two MSETNX on the same three keys (one per shard): exactly one wins, and all keys hold its value.
#[test]
fn msetnx_races_msetnx() {
    let server = Server::start(SHARDS, &[]);
    let (p, q, r) = race_keys();
    let (p2, q2, r2) = (p.clone(), q.clone(), r.clone());
    let mut wins = [0usize; 2];
    race(
        &server,
        300,
        move |con| {
            let _: i64 = redis::cmd("DEL")
                .arg(&p)
                .arg(&q)
                .arg(&r)
                .query(con)
                .unwrap();
        },
        |con, side| {
            let (p, q, r) = race_keys();
            // The two sides list the keys in opposite orders.
            let v = if side == 0 { "A" } else { "B" };
            let mut cmd = redis::cmd("MSETNX");
            if side == 0 {
                cmd.arg(&p).arg(v).arg(&q).arg(v).arg(&r).arg(v);
            } else {
                cmd.arg(&r).arg(v).arg(&q).arg(v).arg(&p).arg(v);
            }
            cmd.query::<i64>(con).unwrap()
        },
        |con, [a, b]| {
            assert_eq!(a + b, 1, "MSETNX results {a} {b}: exactly one must win");
            wins[b as usize] += 1;
            let winner = if a == 1 { "A" } else { "B" };
            let vals: Vec<Option<String>> = [&p2, &q2, &r2].iter().map(|k| get(con, k)).collect();
            assert!(
                vals.iter().all(|v| v.as_deref() == Some(winner)),
                "winner {winner}, values {vals:?}"
            );
        },
    );
    eprintln!("first MSETNX won {} rounds, second {}", wins[0], wins[1]);
    // Both orders happened, so the race was really run.
    assert!(wins[0] > 0 && wins[1] > 0, "one side always won: {wins:?}");
}

/// MSETNX racing a cross-shard MSET of the same keys. Serially, either order ends with MSET's
/// values on every key; a half-applied MSETNX would leave one of its values behind.
#[test]
fn msetnx_races_mset() {
    let server = Server::start(SHARDS, &[]);
    let (p, q, r) = race_keys();
    let (p2, q2, r2) = (p.clone(), q.clone(), r.clone());
    let mut wins = [0usize; 2];
    race(
        &server,
        300,
        move |con| {
            let _: i64 = redis::cmd("DEL")
                .arg(&p)
                .arg(&q)
                .arg(&r)
                .query(con)
                .unwrap();
        },
        |con, side| {
            let (p, q, r) = race_keys();
            if side == 0 {
                redis::cmd("MSETNX")
                    .arg(&p)
                    .arg("N")
                    .arg(&q)
                    .arg("N")
                    .arg(&r)
                    .arg("N")
                    .query::<i64>(con)
                    .unwrap()
            } else {
                let _: () = redis::cmd("MSET")
                    .arg(&r)
                    .arg("M")
                    .arg(&p)
                    .arg("M")
                    .arg(&q)
                    .arg("M")
                    .query(con)
                    .unwrap();
                -1
            }
        },
        |con, [nx, _]| {
            wins[nx as usize] += 1;
            let vals: Vec<Option<String>> = [&p2, &q2, &r2].iter().map(|k| get(con, k)).collect();
            assert!(
                vals.iter().all(|v| v.as_deref() == Some("M")),
                "MSETNX returned {nx}; values {vals:?}"
            );
        },
    );
    eprintln!("MSETNX won {} rounds, lost {}", wins[1], wins[0]);
    assert!(
        wins[0] > 0 && wins[1] > 0,
        "MSETNX always won or always lost: {wins:?}"
    );
}

#[test]
fn cross_shard_replies_in_resp3() {
    let server = Server::start(SHARDS, &[]);
    let mut raw = server.raw();
    raw.send(b"HELLO 3\r\n");
    raw.read_reply();
    let k = spread("r3");
    raw.send_cmd(&[b"SET", k[1].as_bytes(), b"v"]);
    raw.expect(b"+OK\r\n");
    raw.send_cmd(&[b"MGET", k[0].as_bytes(), k[1].as_bytes(), k[2].as_bytes()]);
    raw.expect(b"*3\r\n_\r\n$1\r\nv\r\n_\r\n");
    let mut con = server.conn();
    let v: Value = redis::cmd("EXISTS")
        .arg(&k[0])
        .arg(&k[1])
        .arg(&k[2])
        .query(&mut con)
        .unwrap();
    assert_eq!(v, Value::Int(1));
}
