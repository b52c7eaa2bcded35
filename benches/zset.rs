//! Sorted set micro-benchmarks on the type itself: ZADD into a 1M-member skiplist, ZRANK,
//! ZRANGE by rank and by score near the middle, small listpack inserts, and ZRANK and moving
//! ZADDs on a 1,000-member skiplist that stays in the cache.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use redcell::types::zset::{AddFlags, ScoreBound, ScoreRange, ZSet, ZsetLimits};

const N: usize = 1_000_000;
const LIM: ZsetLimits = ZsetLimits {
    max_entries: 128,
    max_value: 64,
};

fn member(i: usize) -> Vec<u8> {
    format!("member:{i:08}").into_bytes()
}

/// A score spreading members out of insertion order.
fn score(i: usize) -> f64 {
    score_in(i, N)
}

/// `score` for a set of `n` members.
fn score_in(i: usize, n: usize) -> f64 {
    ((i * 7919) % n) as f64 / 10.0
}

fn filled(n: usize) -> ZSet {
    let mut z = ZSet::new();
    for i in 0..n {
        z.add(&member(i), score_in(i, n), AddFlags::default(), LIM);
    }
    z
}

fn million() -> ZSet {
    filled(N)
}

fn bench_zset(c: &mut Criterion) {
    let mut z = million();
    let mut g = c.benchmark_group("zset_1m");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("zadd_update", |b| {
        b.iter(|| {
            i = (i + 104_729) % N;
            black_box(z.add(&member(i), score(i) + 0.5, AddFlags::default(), LIM));
        })
    });
    let mut j = N;
    g.bench_function("zadd_new_then_zrem", |b| {
        b.iter(|| {
            j += 1;
            let m = member(j);
            z.add(&m, score(j), AddFlags::default(), LIM);
            black_box(z.remove(&m));
        })
    });
    let mut k = 0usize;
    g.bench_function("zrank", |b| {
        b.iter(|| {
            k = (k + 104_729) % N;
            black_box(z.rank(&member(k)));
        })
    });
    g.bench_function("zrange_rank_10", |b| {
        b.iter(|| black_box(z.range(N / 2, N / 2 + 10, false).len()))
    });
    let r = ScoreRange {
        min: ScoreBound {
            value: 50_000.0,
            exclusive: false,
        },
        max: ScoreBound {
            value: 50_001.0,
            exclusive: true,
        },
    };
    g.bench_function("zrangebyscore_10", |b| {
        b.iter(|| {
            let (lo, hi) = z.score_ranks(black_box(&r));
            black_box(z.range(lo, hi, false).len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("zset_listpack");
    g.throughput(Throughput::Elements(100));
    g.bench_function("zadd_100", |b| {
        b.iter_batched(
            ZSet::new,
            |mut z| {
                for i in 0..100 {
                    z.add(&member(i), score(i), AddFlags::default(), LIM);
                }
                z
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // A skiplist that stays in the cache: what a walk costs when it does not miss.
    const SMALL: usize = 1_000;
    let mut z = filled(SMALL);
    let mut g = c.benchmark_group("zset_1k");
    g.throughput(Throughput::Elements(1));
    let mut k = 0usize;
    g.bench_function("zrank", |b| {
        b.iter(|| {
            k = (k + 337) % SMALL;
            black_box(z.rank(&member(k)));
        })
    });
    // Each call gives a member a score it has not had just before, so the node moves.
    let mut t = 0usize;
    g.bench_function("zadd_move", |b| {
        b.iter(|| {
            t += 1;
            let (m, s) = (t * 337 % SMALL, (t * 7919 % SMALL) as f64 + 0.5);
            black_box(z.add(&member(m), s, AddFlags::default(), LIM));
        })
    });
    g.finish();
}

fn bench_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("zset_build");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("zadd_1m", |b| b.iter(|| black_box(million().len())));
    g.finish();
}

criterion_group!(benches, bench_zset, bench_build);
criterion_main!(benches);
