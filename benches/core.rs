//! Micro-benchmarks of the engine's hot paths: RESP decoding, key → slot, GET/SET through
//! `run_keyed` on a 100k-key shard, and one cross-shard call round trip.

use std::hint::black_box;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use glommio::{LocalExecutorBuilder, Placement};

use redcell::cmd::{self, Handler, KeyedFn};
use redcell::config::Config;
use redcell::resp::decode::Span;
use redcell::resp::{Args, Decoded, Decoder, Reply};
use redcell::server::readiness::Readiness;
use redcell::shard::mesh::{build_mesh, Mesh, MeshEnds};
use redcell::shard::{Shard, Shared};

fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn bench_decode(c: &mut Criterion) {
    let mut buf = Vec::new();
    for i in 0..8 {
        let key = format!("user:{i}:profile");
        encode(
            &[b"SET", key.as_bytes(), b"some value of moderate size"],
            &mut buf,
        );
        encode(&[b"GET", key.as_bytes()], &mut buf);
    }
    let mut dec = Decoder::new(512 << 20);
    let mut g = c.benchmark_group("resp");
    g.throughput(Throughput::Elements(16));
    g.bench_function("decode_pipeline_16", |b| {
        b.iter(|| {
            let mut at = 0;
            while at < buf.len() {
                match dec.decode(black_box(&buf[at..]), false) {
                    Decoded::Request { len, .. } => {
                        black_box(Args::new(&buf[at..at + len], dec.scratch(), dec.spans()).get(1));
                        at += len;
                    }
                    _ => unreachable!(),
                }
            }
        })
    });
    g.finish();
}

fn bench_key_slot(c: &mut Criterion) {
    let mut g = c.benchmark_group("key_slot");
    for (name, key) in [
        ("short", &b"foo"[..]),
        ("typical", b"user:1000:profile"),
        ("hash_tag", b"{user1000}.following"),
        ("long_64", &[b'k'; 64][..]),
    ] {
        g.bench_function(name, |b| b.iter(|| redcell::slot::key_slot(black_box(key))));
    }
    g.finish();
}

fn shared(nshards: usize) -> Arc<Shared> {
    Arc::new(Shared {
        upcalls: redcell::cmd::upcalls(),
        ..Shared::new(nshards, Config::default())
    })
}

/// A request's bytes plus the spans of its arguments.
struct Request {
    buf: Vec<u8>,
    spans: Vec<Span>,
}

impl Request {
    fn new(args: &[&[u8]]) -> Request {
        let mut buf = Vec::new();
        encode(args, &mut buf);
        let mut dec = Decoder::new(512 << 20);
        assert!(matches!(dec.decode(&buf, false), Decoded::Request { .. }));
        Request {
            spans: dec.spans().to_vec(),
            buf,
        }
    }

    fn args(&self) -> Args<'_> {
        Args::new(&self.buf, &[], &self.spans)
    }
}

fn keyed(name: &[u8]) -> (usize, KeyedFn) {
    let idx = cmd::table().lookup(name).expect("command exists");
    match cmd::table().specs[idx].handler {
        Handler::Keyed(f) => (idx, f),
        _ => panic!("not a keyed command"),
    }
}

/// An executor set up as the server sets up its shards; `spin` keeps it polling that long
/// before it parks (glommio's `spin_before_park`; the server does not set it).
fn executor(name: &str, cpu: Option<usize>, spin: Option<Duration>) -> glommio::LocalExecutor {
    let placement = cpu.map_or(Placement::Unbound, Placement::Fixed);
    let mut b = LocalExecutorBuilder::new(placement)
        .name(name)
        .io_memory(256 * 1024)
        .ring_depth(256);
    if let Some(spin) = spin {
        b = b.spin_before_park(spin);
    }
    b.make().expect("glommio executor (needs io_uring)")
}

/// A shard as the server makes one on the epoll path: its mesh inbox task, and the epoll
/// driver that wakes it (when idle, spinning up to `spin`, as `--busy-poll-us`, then
/// napping up to `nap`, as `--nap-us`).
fn start_shard(
    id: usize,
    nshards: usize,
    ends: MeshEnds,
    sh: Arc<Shared>,
    nap: Option<Duration>,
    spin: Option<Duration>,
) -> Rc<Shard> {
    let (mesh, inbox) = Mesh::new(ends);
    let shard = Rc::new(Shard::new(id, nshards, false, sh, mesh));
    glommio::spawn_local(shard.clone().serve_inbox(inbox)).detach();
    let readiness = Readiness::new(nap, spin).expect("an epoll set");
    glommio::spawn_local(readiness.drive(shard.clone())).detach();
    shard
}

fn bench_keyspace(c: &mut Criterion) {
    let ex = executor("bench-keyspace", None, None);
    ex.run(async {
        let ends = build_mesh(1).expect("an eventfd").pop().unwrap();
        let shard = start_shard(0, 1, ends, shared(1), None, None);
        let now = redcell::util::time::now_ms();
        let mut out = Reply::new(false);
        let (set_idx, set) = keyed(b"set");
        let (get_idx, get) = keyed(b"get");
        const KEYS: usize = 100_000;
        for i in 0..KEYS {
            let key = format!("key:{i:06}");
            let req = Request::new(&[b"SET", key.as_bytes(), b"value-of-twenty-bytes"]);
            redcell::server::conn::run_here(
                &shard,
                0,
                set_idx,
                set,
                &req.args(),
                &mut out,
                now,
                None,
                Default::default(),
            );
            out.buf.clear();
        }
        assert_eq!(shard.data.borrow().as_ref().map_or(0, |d| d.len()), KEYS);
        // 4,096 requests over keys spread through the keyspace, cycled.
        let gets: Vec<Request> = (0..4096)
            .map(|i| {
                let key = format!("key:{:06}", (i * 7919) % KEYS);
                Request::new(&[b"GET", key.as_bytes()])
            })
            .collect();
        let sets: Vec<Request> = (0..4096)
            .map(|i| {
                let key = format!("key:{:06}", (i * 7919) % KEYS);
                Request::new(&[b"SET", key.as_bytes(), b"another-value-20byte"])
            })
            .collect();
        let mut g = c.benchmark_group("run_keyed_100k_keys");
        let mut i = 0;
        g.bench_function("get_hit", |b| {
            b.iter(|| {
                let req = &gets[i & 4095];
                i += 1;
                redcell::server::conn::run_here(
                    &shard,
                    0,
                    get_idx,
                    get,
                    &req.args(),
                    &mut out,
                    now,
                    None,
                    Default::default(),
                );
                out.buf.clear();
            })
        });
        g.bench_function("set_existing", |b| {
            b.iter(|| {
                let req = &sets[i & 4095];
                i += 1;
                redcell::server::conn::run_here(
                    &shard,
                    0,
                    set_idx,
                    set,
                    &req.args(),
                    &mut out,
                    now,
                    None,
                    Default::default(),
                );
                out.buf.clear();
            })
        });
        g.finish();

        // Hashes and sets through the same path: 10k small (listpack/intset) values, and one
        // big (hashtable) value of 200k fields / members.
        let (hset_idx, hset) = keyed(b"hset");
        let (hget_idx, hget) = keyed(b"hget");
        let (sadd_idx, sadd) = keyed(b"sadd");
        let (sism_idx, sism) = keyed(b"sismember");
        const SMALL: usize = 10_000;
        const BIG: usize = 200_000;
        for i in 0..SMALL {
            let key = format!("h:{i}");
            for f in 0..8 {
                let field = format!("f{f}");
                let req = Request::new(&[b"HSET", key.as_bytes(), field.as_bytes(), b"v"]);
                redcell::server::conn::run_here(
                    &shard,
                    0,
                    hset_idx,
                    hset,
                    &req.args(),
                    &mut out,
                    now,
                    None,
                    Default::default(),
                );
                let member = (f * 3).to_string();
                let req = Request::new(&[b"SADD", format!("s:{i}").as_bytes(), member.as_bytes()]);
                redcell::server::conn::run_here(
                    &shard,
                    0,
                    sadd_idx,
                    sadd,
                    &req.args(),
                    &mut out,
                    now,
                    None,
                    Default::default(),
                );
            }
        }
        for f in 0..BIG {
            let field = format!("field:{f}");
            let req = Request::new(&[b"HSET", b"bighash", field.as_bytes(), b"v"]);
            redcell::server::conn::run_here(
                &shard,
                0,
                hset_idx,
                hset,
                &req.args(),
                &mut out,
                now,
                None,
                Default::default(),
            );
            let req = Request::new(&[b"SADD", b"bigset", field.as_bytes()]);
            redcell::server::conn::run_here(
                &shard,
                0,
                sadd_idx,
                sadd,
                &req.args(),
                &mut out,
                now,
                None,
                Default::default(),
            );
        }
        out.buf.clear();
        let reqs = |f: &dyn Fn(usize) -> Vec<Vec<u8>>| -> Vec<Request> {
            (0..4096)
                .map(|i| {
                    let words = f(i * 7919);
                    let refs: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
                    Request::new(&refs)
                })
                .collect()
        };
        let small_hget = reqs(&|i| {
            vec![
                b"HGET".to_vec(),
                format!("h:{}", i % SMALL).into_bytes(),
                format!("f{}", i % 8).into_bytes(),
            ]
        });
        let small_hset = reqs(&|i| {
            vec![
                b"HSET".to_vec(),
                format!("h:{}", i % SMALL).into_bytes(),
                format!("f{}", i % 8).into_bytes(),
                b"w".to_vec(),
            ]
        });
        let big_hget = reqs(&|i| {
            vec![
                b"HGET".to_vec(),
                b"bighash".to_vec(),
                format!("field:{}", i % BIG).into_bytes(),
            ]
        });
        let big_hset = reqs(&|i| {
            vec![
                b"HSET".to_vec(),
                b"bighash".to_vec(),
                format!("field:{}", i % BIG).into_bytes(),
                b"w".to_vec(),
            ]
        });
        let small_sism = reqs(&|i| {
            vec![
                b"SISMEMBER".to_vec(),
                format!("s:{}", i % SMALL).into_bytes(),
                ((i % 8) * 3).to_string().into_bytes(),
            ]
        });
        let big_sism = reqs(&|i| {
            vec![
                b"SISMEMBER".to_vec(),
                b"bigset".to_vec(),
                format!("field:{}", i % BIG).into_bytes(),
            ]
        });
        let mut g = c.benchmark_group("hash_set");
        let cases: [(&str, &[Request], usize, KeyedFn); 6] = [
            ("hget_listpack_10k_keys", &small_hget, hget_idx, hget),
            ("hset_listpack_10k_keys", &small_hset, hset_idx, hset),
            ("hget_hashtable_200k_fields", &big_hget, hget_idx, hget),
            ("hset_hashtable_200k_fields", &big_hset, hset_idx, hset),
            ("sismember_intset_10k_keys", &small_sism, sism_idx, sism),
            ("sismember_hashtable_200k", &big_sism, sism_idx, sism),
        ];
        for (name, reqs, idx, f) in cases {
            g.bench_function(name, |b| {
                b.iter(|| {
                    let req = &reqs[i & 4095];
                    i += 1;
                    redcell::server::conn::run_here(
                        &shard,
                        0,
                        idx,
                        f,
                        &req.args(),
                        &mut out,
                        now,
                        None,
                        Default::default(),
                    );
                    out.buf.clear();
                })
            });
        }
        g.finish();
    });
}

/// Starts two connected shard executors; returns a function that runs `iters` calls from
/// shard 0 to shard 1 (timed inside executor 0) and gives the elapsed time.
fn two_shards(nap: Option<Duration>, spin: Option<Duration>) -> impl FnMut(u64) -> Duration {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = move |i: usize| (cpus >= 2).then_some(i);
    let sh = shared(2);
    let mut ends = build_mesh(2).expect("an eventfd");
    let ends1 = ends.pop().unwrap();
    let ends0 = ends.pop().unwrap();
    let (iters_tx, iters_rx) = mpsc::channel::<u64>();
    let (time_tx, time_rx) = mpsc::channel::<Duration>();
    let sh1 = sh.clone();
    // Shard 1 ends when shard 0's side of the mesh goes away; shard 0 when `iters_tx` does.
    std::thread::spawn(move || {
        executor("bench-shard-1", pin(1), spin).run(async move {
            let _shard = start_shard(1, 2, ends1, sh1, nap, spin);
            std::future::pending::<()>().await;
        })
    });
    std::thread::spawn(move || {
        executor("bench-shard-0", pin(0), spin).run(async move {
            let shard = start_shard(0, 2, ends0, sh, nap, spin);
            // Between batches nothing is in flight, so blocking on the std channel is harmless.
            while let Ok(iters) = iters_rx.recv() {
                let started = Instant::now();
                for i in 0..iters {
                    let r = shard.call(1, move |s| s.id as u64 + i).await;
                    black_box(r);
                }
                let _ = time_tx.send(started.elapsed());
            }
        })
    });
    move |iters| {
        iters_tx.send(iters).expect("executor 0 is running");
        time_rx.recv().expect("executor 0 answers")
    }
}

/// One `Shard::call` from executor 0 to executor 1 and back, timed inside executor 0, with
/// shards as the server makes them: idle shards nap 200 µs in their epoll set (the default
/// `--nap-us`), sleep through glommio at once (`--nap-us 0`), or spin 200 µs before their
/// nap (`--busy-poll-us 200`).
fn bench_cross_shard(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_shard_call_roundtrip");
    let us200 = Some(Duration::from_micros(200));
    let mut napping = two_shards(us200, None);
    g.bench_function("nap_200us", |b| b.iter_custom(&mut napping));
    let mut parked = two_shards(None, None);
    g.bench_function("no_nap", |b| b.iter_custom(&mut parked));
    let mut spinning = two_shards(us200, us200);
    g.bench_function("spin_200us", |b| b.iter_custom(&mut spinning));
    g.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_key_slot,
    bench_keyspace,
    bench_cross_shard
);
criterion_main!(benches);
