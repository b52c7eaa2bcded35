//! Pipelining: long pipelines over keys on every shard come back complete and in order.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{bulk, encode, int, shard_of, show, Raw, Rng, Server};
use redis::Value;

/// Keys named `prefix<n>` until every shard owns at least `per_shard` of them.
fn keys_on_every_shard(prefix: &str, nshards: usize, per_shard: usize) -> Vec<String> {
    let mut counts = vec![0; nshards];
    let mut keys = Vec::new();
    for n in 0.. {
        if counts.iter().all(|&c| c >= per_shard) {
            break;
        }
        let k = format!("{prefix}{n}");
        let s = shard_of(k.as_bytes(), nshards);
        if counts[s] < per_shard {
            counts[s] += 1;
            keys.push(k);
        }
    }
    keys
}

/// 10,000 mixed SET/GET/INCR through the `redis` crate's pipeline; every reply checked in order.
fn mixed_pipeline(nshards: usize) {
    let server = Server::start(nshards, &[]);
    let mut con = server.conn();
    let strs = keys_on_every_shard("str:", nshards, 8);
    let ctrs = keys_on_every_shard("ctr:", nshards, 4);
    let mut model: HashMap<String, Vec<u8>> = HashMap::new();
    let mut rng = Rng(0x5eed_0000 + nshards as u64);
    let mut pipe = redis::pipe();
    let mut expected = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        match rng.below(4) {
            0 => {
                let k = &strs[rng.below(strs.len() as u64) as usize];
                let v = format!("value-{i}");
                pipe.cmd("SET").arg(k).arg(&v);
                model.insert(k.clone(), v.into_bytes());
                expected.push(Value::Okay);
            }
            1 => {
                let k = &strs[rng.below(strs.len() as u64) as usize];
                pipe.cmd("GET").arg(k);
                expected.push(match model.get(k) {
                    Some(v) => Value::BulkString(v.clone()),
                    None => Value::Nil,
                });
            }
            2 => {
                let k = &ctrs[rng.below(ctrs.len() as u64) as usize];
                pipe.cmd("INCR").arg(k);
                let n = model
                    .get(k)
                    .map_or(0, |v| String::from_utf8_lossy(v).parse::<i64>().unwrap())
                    + 1;
                model.insert(k.clone(), n.to_string().into_bytes());
                expected.push(Value::Int(n));
            }
            _ => {
                let k = &ctrs[rng.below(ctrs.len() as u64) as usize];
                pipe.cmd("GET").arg(k);
                expected.push(match model.get(k) {
                    Some(v) => Value::BulkString(v.clone()),
                    None => Value::Nil,
                });
            }
        }
    }
    let got: Vec<Value> = pipe.query(&mut con).expect("pipeline");
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "reply {i} of the pipeline");
    }
    // The final state agrees with the model too, key by key.
    for (k, v) in &model {
        let stored: Vec<u8> = redis::cmd("GET").arg(k).query(&mut con).unwrap();
        assert_eq!(&stored, v, "key {k}");
    }
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize as usize, model.len());
}

#[test]
fn pipeline_10k_two_shards() {
    mixed_pipeline(2);
}

#[test]
fn pipeline_10k_three_shards() {
    mixed_pipeline(3);
}

/// Builds a pipeline mixing keyed commands on every shard with keyless ones, multi-shard ones
/// and errors, with the exact bytes a Redis server answers.
fn byte_exact_script(nshards: usize, n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let keys = keys_on_every_shard("k:", nshards, 6);
    let mut model: HashMap<String, Vec<u8>> = HashMap::new();
    let mut rng = Rng(seed);
    let (mut req, mut rep) = (Vec::new(), Vec::new());
    let pick = |rng: &mut Rng| keys[rng.below(keys.len() as u64) as usize].clone();
    for i in 0..n {
        match rng.below(10) {
            0 => {
                req.extend(b"*1\r\n$4\r\nPING\r\n");
                rep.extend(b"+PONG\r\n");
            }
            1 => {
                let msg = format!("echo-{i}");
                req.extend(encode(&[b"ECHO", msg.as_bytes()]));
                rep.extend(bulk(msg.as_bytes()));
            }
            2 => {
                // Inline form, routed like any other request.
                let k = pick(&mut rng);
                req.extend(format!("GET {k}\r\n").as_bytes());
                rep.extend(match model.get(&k) {
                    Some(v) => bulk(v),
                    None => b"$-1\r\n".to_vec(),
                });
            }
            3 | 4 => {
                let (k, v) = (pick(&mut rng), format!("v{i}"));
                req.extend(encode(&[b"SET", k.as_bytes(), v.as_bytes()]));
                rep.extend(b"+OK\r\n");
                model.insert(k, v.into_bytes());
            }
            5 => {
                let k = pick(&mut rng);
                req.extend(encode(&[b"GET", k.as_bytes()]));
                rep.extend(match model.get(&k) {
                    Some(v) => bulk(v),
                    None => b"$-1\r\n".to_vec(),
                });
            }
            6 => {
                // MGET over keys of several shards, in the middle of forwarded commands.
                let ks: Vec<String> = (0..3).map(|_| pick(&mut rng)).collect();
                let mut args: Vec<&[u8]> = vec![b"MGET"];
                args.extend(ks.iter().map(|k| k.as_bytes()));
                req.extend(encode(&args));
                rep.extend(b"*3\r\n");
                for k in &ks {
                    rep.extend(match model.get(k) {
                        Some(v) => bulk(v),
                        None => b"$-1\r\n".to_vec(),
                    });
                }
            }
            7 => {
                let (a, b) = (pick(&mut rng), pick(&mut rng));
                let (va, vb) = (format!("m{i}a"), format!("m{i}b"));
                req.extend(encode(&[
                    b"MSET",
                    a.as_bytes(),
                    va.as_bytes(),
                    b.as_bytes(),
                    vb.as_bytes(),
                ]));
                rep.extend(b"+OK\r\n");
                model.insert(a, va.into_bytes());
                model.insert(b, vb.into_bytes());
            }
            8 => {
                // A keyed error on a remote or local shard.
                let k = pick(&mut rng);
                req.extend(encode(&[b"INCR", k.as_bytes()]));
                match model.get(&k) {
                    None => {
                        rep.extend(int(1));
                        model.insert(k, b"1".to_vec());
                    }
                    Some(v) => match std::str::from_utf8(v).unwrap().parse::<i64>() {
                        Ok(n) => {
                            rep.extend(int(n + 1));
                            model.insert(k, (n + 1).to_string().into_bytes());
                        }
                        Err(_) => rep.extend(b"-ERR value is not an integer or out of range\r\n"),
                    },
                }
            }
            _ => {
                if rng.below(2) == 0 {
                    req.extend(encode(&[b"DBSIZE"]));
                    rep.extend(int(model.len() as i64));
                } else {
                    req.extend(encode(&[b"NOSUCHCMD", b"x"]));
                    rep.extend(
                        b"-ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' \r\n",
                    );
                }
            }
        }
    }
    (req, rep)
}

/// Sends `req` from a writer thread in random-sized chunks (so requests straddle reads) while
/// this thread reads, and checks the reply stream byte for byte.
fn run_byte_exact(server: &Server, req: Vec<u8>, rep: &[u8], seed: u64) {
    let mut raw: Raw = server.raw();
    let mut writer = raw.stream.try_clone().expect("clone socket");
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        let mut rng = Rng(seed);
        let mut at = 0;
        while at < req.len() {
            let n = (1 + rng.below(3000) as usize).min(req.len() - at);
            writer.write_all(&req[at..at + n]).expect("write");
            at += n;
            if rng.below(50) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    // Compare in chunks so a mismatch shows where the streams diverge.
    let mut at = 0;
    while at < rep.len() {
        let n = 4096.min(rep.len() - at);
        let got = raw.read_n(n, Duration::from_secs(20));
        if got != rep[at..at + n] {
            let diff = got
                .iter()
                .zip(&rep[at..at + n])
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let from = diff.saturating_sub(80);
            panic!(
                "reply stream diverges at byte {}\n expected: {}\n      got: {}",
                at + diff,
                show(&rep[at + from..(at + diff + 80).min(at + n)]),
                show(&got[from..(diff + 80).min(n)])
            );
        }
        at += n;
    }
    sender.join().expect("writer thread");
    raw.expect_silence(Duration::from_millis(50));
}

#[test]
fn byte_exact_mixed_pipeline_three_shards() {
    let server = Server::start(3, &[]);
    let (req, rep) = byte_exact_script(3, 5_000, 7);
    run_byte_exact(&server, req, &rep, 11);
}

#[test]
fn byte_exact_mixed_pipeline_two_shards() {
    let server = Server::start(2, &[]);
    let (req, rep) = byte_exact_script(2, 5_000, 8);
    run_byte_exact(&server, req, &rep, 12);
}

/// One write holding commands for every shard, each keyless command between two keyed ones.
#[test]
fn one_write_spanning_all_shards_keeps_order() {
    let n = 3;
    let server = Server::start(n, &[]);
    let keys: Vec<String> = (0..n).map(|s| common::key_on_shard("o:", s, n)).collect();
    let mut req = Vec::new();
    let mut rep = Vec::new();
    for round in 0..3 {
        for (s, k) in keys.iter().enumerate() {
            let v = format!("r{round}s{s}");
            req.extend(encode(&[b"SET", k.as_bytes(), v.as_bytes()]));
            rep.extend(b"+OK\r\n");
            req.extend(b"PING\r\n");
            rep.extend(b"+PONG\r\n");
            req.extend(encode(&[b"GET", k.as_bytes()]));
            rep.extend(bulk(v.as_bytes()));
            req.extend(encode(&[b"ECHO", k.as_bytes()]));
            rep.extend(bulk(k.as_bytes()));
        }
    }
    req.extend(encode(&[b"DBSIZE"]));
    rep.extend(int(n as i64));
    // From several connections, since which shard is local depends on the accepting executor.
    for _ in 0..6 {
        let mut raw = server.raw();
        raw.send(&req);
        raw.expect(&rep);
        raw.expect_silence(Duration::from_millis(20));
    }
}

/// A pipeline's writes take effect in the order they were sent, whichever shard each lands
/// on: the propagated stream (what the AOF and replicas get) lists them in that order, as
/// Redis runs one connection's commands one after another. Reads between them may run
/// early (their replies wait for their turn), writes may not.
#[test]
fn pipelined_writes_take_effect_in_the_order_sent() {
    let server = Server::start(3, &["--enable-debug-command", "yes"]);
    let mut control = server.raw();
    assert_eq!(control.call(&[b"DEBUG", b"JOURNAL", b"ON"]), b"+OK\r\n");
    let keys = keys_on_every_shard("ord:", 3, 3);
    let mut rng = Rng(0x0bde_5eed);
    let mut req = Vec::new();
    let mut sent = Vec::new();
    for i in 0..300 {
        let k = &keys[rng.below(keys.len() as u64) as usize];
        if rng.below(3) == 0 {
            req.extend(encode(&[b"GET", k.as_bytes()]));
        } else {
            let v = i.to_string();
            req.extend(encode(&[b"SET", k.as_bytes(), v.as_bytes()]));
            sent.push(format!("SET {k} {v}"));
        }
    }
    let mut c = server.raw();
    c.send(&req);
    for _ in 0..300 {
        c.read_reply();
    }
    let reply = control.call(&[b"DEBUG", b"JOURNAL", b"READ"]);
    let text = String::from_utf8_lossy(&reply);
    // The stream's commands, one per line: drop RESP headers, join each command's words.
    let mut seen = Vec::new();
    let mut words: Vec<&str> = Vec::new();
    let mut want = 0;
    for line in text.split("\r\n") {
        if let Some(n) = line.strip_prefix('*') {
            want = n.parse().unwrap_or(0);
            words.clear();
        } else if !line.starts_with('$') && want > 0 {
            words.push(line);
            if words.len() == want {
                if words[0] == "SET" {
                    seen.push(words.join(" "));
                }
                want = 0;
            }
        }
    }
    assert_eq!(seen.len(), sent.len(), "stream: {}", show(&reply));
    let first_out_of_order = seen.iter().zip(&sent).position(|(a, b)| a != b);
    assert_eq!(first_out_of_order, None, "sent {sent:?}\nstream {seen:?}");
}
