//! This machine's streaming read bandwidth: the ceiling of memory-bound decode. A buffer far larger than the
//! last-level cache is summed (8 independent u64 lanes, which the compiler vectorizes), by 1 thread and by every
//! available CPU, each reading its own contiguous part. Decode's achieved weight bandwidth (weight bytes read per
//! token × tokens/s) divided by the figure here is how close a backend is to the physical limit.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BYTES: usize = 512 << 20;

fn sum(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for c in words.chunks_exact(8) {
        for (a, &w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(w);
        }
    }
    acc.iter().fold(0, |s, &a| s.wrapping_add(a))
}

fn bandwidth(c: &mut Criterion) {
    // Filled with non-zero values so every page is really backed.
    let buf: Vec<u64> = (0..BYTES / 8).map(|i| i as u64).collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut g = c.benchmark_group("memory");
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.sample_size(20);
    g.bench_function("stream_read_1_thread", |b| b.iter(|| black_box(sum(black_box(&buf)))));
    g.bench_function(format!("stream_read_{cpus}_threads"), |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                let parts: Vec<_> = buf.chunks(buf.len().div_ceil(cpus)).map(|p| s.spawn(move || sum(p))).collect();
                black_box(parts.into_iter().map(|h| h.join().expect("reader")).fold(0u64, u64::wrapping_add))
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bandwidth);
criterion_main!(benches);
