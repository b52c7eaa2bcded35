//! HyperLogLog micro-benchmarks on the type directly: PFADD into sparse and dense values, and
//! PFCOUNT of a union (unpacking registers and estimating), as the commands do.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use redcell::types::hll;

const SPARSE_MAX: usize = 3000;

fn elements(n: usize, tag: u64) -> Vec<[u8; 8]> {
    (0..n as u64)
        .map(|i| (i ^ (tag << 40)).to_le_bytes())
        .collect()
}

/// A dense HLL holding `n` elements.
fn filled(n: usize, tag: u64) -> Vec<u8> {
    let mut s = hll::new_sparse();
    for e in elements(n, tag) {
        let _ = hll::add(&mut s, &e, SPARSE_MAX);
    }
    s
}

fn bench_pfadd(c: &mut Criterion) {
    let mut g = c.benchmark_group("hll");
    // Sparse: the first 500 elements of a fresh HLL (the opcode-stream rewrite path).
    let few = elements(500, 1);
    g.throughput(Throughput::Elements(few.len() as u64));
    g.bench_function("pfadd_sparse_500", |b| {
        b.iter_batched(
            hll::new_sparse,
            |mut s| {
                for e in &few {
                    let _ = hll::add(&mut s, e, SPARSE_MAX);
                }
                s
            },
            BatchSize::SmallInput,
        )
    });
    // Dense: 10k more elements into an HLL that already holds 100k.
    let base = filled(100_000, 2);
    let more = elements(10_000, 3);
    g.throughput(Throughput::Elements(more.len() as u64));
    g.bench_function("pfadd_dense_10k", |b| {
        b.iter_batched(
            || base.clone(),
            |mut s| {
                for e in &more {
                    let _ = hll::add(&mut s, e, SPARSE_MAX);
                }
                s
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_pfcount(c: &mut Criterion) {
    let mut g = c.benchmark_group("hll");
    // PFCOUNT a b c: unpack three dense HLLs, take the register maxima, estimate.
    let inputs: Vec<Vec<u8>> = (0..3).map(|t| filled(50_000, 10 + t)).collect();
    g.bench_function("pfcount_union_3_dense", |b| {
        b.iter(|| {
            let mut max = vec![0u8; hll::REGISTERS];
            for s in &inputs {
                let _ = hll::merge_into(&mut max, s);
            }
            black_box(hll::count_registers(&max))
        })
    });
    // PFCOUNT of one merged value with a stale cache: the full estimate.
    let mut merged = hll::new_sparse();
    let _ = hll::to_dense(&mut merged);
    let mut max = vec![0u8; hll::REGISTERS];
    for s in &inputs {
        let _ = hll::merge_into(&mut max, s);
    }
    hll::write_registers(&mut merged, &max, SPARSE_MAX);
    g.bench_function("pfcount_merged_uncached", |b| {
        b.iter(|| black_box(hll::count(&merged)))
    });
    g.finish();
}

criterion_group!(benches, bench_pfadd, bench_pfcount);
criterion_main!(benches);
