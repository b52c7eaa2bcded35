//! Stream type benchmarks: XADD-style appends (with and without MAXLEN ~ trimming) and XRANGE
//! scans over a 1M-entry stream, driving `types::stream::Stream` directly.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use redcell::types::stream::{Stream, StreamId, StreamLimits, Trim};

const FIELDS: [&[u8]; 4] = [b"sensor", b"temperature", b"value", b"21.5"];

fn filled(n: u64) -> Stream {
    let mut s = Stream::new();
    let lim = StreamLimits::default();
    for i in 1..=n {
        s.append(StreamId::new(i, 0), FIELDS.iter().copied(), lim);
    }
    s
}

fn bench_xadd(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream_xadd");
    let lim = StreamLimits::default();
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("append_10k", |b| {
        b.iter_batched(
            Stream::new,
            |mut s| {
                for i in 1..=10_000u64 {
                    let id = s.next_id(i, None).expect("room");
                    s.append(id, FIELDS.iter().copied(), lim);
                }
                black_box(s.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("append_10k_maxlen_approx_1000", |b| {
        b.iter_batched(
            Stream::new,
            |mut s| {
                for i in 1..=10_000u64 {
                    let id = s.next_id(i, None).expect("room");
                    s.append(id, FIELDS.iter().copied(), lim);
                    s.trim(Trim::MaxLen(1000), true, 10_000);
                }
                black_box(s.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_xrange(c: &mut Criterion) {
    let s = filled(1_000_000);
    let mut g = c.benchmark_group("stream_xrange_1m");
    g.throughput(Throughput::Elements(100));
    let mut at = 1u64;
    g.bench_function("count_100_from_random_start", |b| {
        b.iter(|| {
            at = at
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                % 999_000
                + 1;
            let mut n = 0usize;
            s.range(StreamId::new(at, 0), StreamId::MAX, false, |_, f| {
                n += f.count;
                n < 400
            });
            black_box(n)
        })
    });
    g.bench_function("rev_count_100_from_random_end", |b| {
        b.iter(|| {
            at = at
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                % 999_000
                + 1000;
            let mut n = 0usize;
            s.range(StreamId::MIN, StreamId::new(at, 0), true, |_, f| {
                n += f.count;
                n < 400
            });
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_xadd, bench_xrange);
criterion_main!(benches);
