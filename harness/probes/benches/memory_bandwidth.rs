//! This machine's streaming read bandwidth, the ceiling of memory-bound decode, as criterion throughput: every loop
//! of `edgebench_probes::bandwidth` (plain and prefetching) over ordinary 4 KiB pages and 2 MiB huge pages (the
//! `_hugepages` benches), by 1 thread and by every available CPU. `edgebench run --memory-bandwidth` records the same
//! loops' fastest beside a run's cells.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edgebench_probes::bandwidth::{read_parallel, Buffer, BYTES, LOOPS};

fn bandwidth(c: &mut Criterion) {
    let plain = Buffer::new(BYTES, false).expect("the plain buffer");
    let huge = Buffer::new(BYTES, true).expect("the huge-page buffer");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut g = c.benchmark_group("memory");
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.sample_size(20);
    for (pages, buf) in [("", plain.words()), ("_hugepages", huge.words())] {
        for (name, f) in LOOPS {
            let name = if name == "plain" { "stream_read" } else { "stream_read_prefetch" };
            g.bench_function(format!("{name}{pages}_1_thread"), |b| b.iter(|| black_box(f(black_box(buf)))));
            g.bench_function(format!("{name}{pages}_{cpus}_threads"), |b| {
                b.iter(|| black_box(read_parallel(black_box(buf), cpus, f)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bandwidth);
criterion_main!(benches);
