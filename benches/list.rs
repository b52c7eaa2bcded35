//! List micro-benchmarks on `types::list::List` directly: pushes and pops at both ends,
//! LRANGE-style walks, LINDEX in the middle and LINSERT-style inserts on 1M-element lists.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use redcell::types::list::{End, Fill, List};

const BIG: usize = 1_000_000;

fn filled(n: usize, fill: Fill) -> List {
    let mut l = List::new();
    for i in 0..n {
        l.push(End::Tail, format!("element:{i}").as_bytes(), fill);
    }
    l
}

fn bench_push_pop(c: &mut Criterion) {
    let fill = Fill::default();
    let mut g = c.benchmark_group("list");
    g.throughput(Throughput::Elements(1));
    // Steady state on a 1M-element list: one push and one pop per iteration, so the size
    // stays put while both ends' nodes fill, split off and drain.
    let mut l = filled(BIG, fill);
    g.bench_function("rpush_lpop_1m", |b| {
        b.iter(|| {
            l.push(End::Tail, black_box(b"element:new"), fill);
            black_box(l.pop_with(End::Head, |e| e.len()));
        })
    });
    g.bench_function("lpush_rpop_1m", |b| {
        b.iter(|| {
            l.push(End::Head, black_box(b"element:new"), fill);
            black_box(l.pop_with(End::Tail, |e| e.len()));
        })
    });
    g.bench_function("lindex_middle_1m", |b| {
        b.iter(|| black_box(l.get(black_box(BIG / 2)).map(<[u8]>::len)))
    });
    g.throughput(Throughput::Elements(BIG as u64));
    g.bench_function("build_1m_rpush", |b| {
        b.iter(|| black_box(filled(BIG, fill).len()))
    });
    g.finish();
}

fn bench_range(c: &mut Criterion) {
    let fill = Fill::default();
    let l = filled(BIG, fill);
    let mut g = c.benchmark_group("list");
    g.throughput(Throughput::Elements(100));
    g.bench_function("lrange_100_from_middle_1m", |b| {
        b.iter(|| {
            let n: usize = l
                .iter_from(black_box(BIG / 2))
                .take(100)
                .map(<[u8]>::len)
                .sum();
            black_box(n)
        })
    });
    g.throughput(Throughput::Elements(BIG as u64));
    g.bench_function("lrange_all_1m", |b| {
        b.iter(|| black_box(l.iter().map(<[u8]>::len).sum::<usize>()))
    });
    g.bench_function("lrange_all_reverse_1m", |b| {
        b.iter(|| black_box(l.iter_rev().map(<[u8]>::len).sum::<usize>()))
    });
    g.finish();
}

fn bench_insert(c: &mut Criterion) {
    let fill = Fill::default();
    let mut g = c.benchmark_group("list");
    g.throughput(Throughput::Elements(1));
    // 100 LINSERT-style inserts in the middle of a 100k list (the node there grows and
    // splits), then one LREM pass over the whole list that takes them out again (merges).
    g.bench_function("insert_remove_middle_100k", |b| {
        b.iter_batched_ref(
            || filled(100_000, fill),
            |l| {
                for i in 0..100 {
                    l.insert(50_000 + i, b"inserted", fill);
                }
                black_box(l.remove_matching(b"inserted", 0, false, fill))
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_push_pop, bench_range, bench_insert);
criterion_main!(benches);
