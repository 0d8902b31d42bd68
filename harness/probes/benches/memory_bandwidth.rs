//! This machine's streaming read bandwidth: the ceiling of memory-bound decode. A buffer far larger than the
//! last-level cache is summed (8 independent u64 lanes, which the compiler vectorizes), by 1 thread and by every
//! available CPU, each reading its own contiguous part, once as a plain loop and once prefetching 16 KiB ahead in
//! software (on x86-64; as the native engine's matrix-vector kernels do, and on some CPUs the hardware prefetcher
//! alone reads much slower). Each runs over two buffers: ordinary 4 KiB pages, and (the `_hugepages` benches) 2 MiB
//! aligned memory advised as transparent huge pages, as the native engine keeps its weights (Linux; where the system
//! does not grant them, the two buffers are alike). Decode's achieved weight bandwidth (weight bytes read per token ×
//! tokens/s) divided by the fastest of them is how close a backend is to the physical limit.

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

/// Bytes ahead of the reads that [`sum_prefetched`] prefetches.
const AHEAD: usize = 16 << 10;

/// As [`sum`], prefetching [`AHEAD`] bytes ahead of each 64-byte line it reads (a plain sum elsewhere than x86-64).
fn sum_prefetched(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for c in words.chunks_exact(8) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch reads nothing architecturally and never faults, whatever the address.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(c.as_ptr().cast::<i8>().wrapping_add(AHEAD));
        }
        for (a, &w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(w);
        }
    }
    acc.iter().fold(0, |s, &a| s.wrapping_add(a))
}

/// `BYTES` in 2 MiB-aligned memory advised as transparent huge pages, filled as the plain buffer is.
struct HugeBuf(*mut u64, std::alloc::Layout);

impl HugeBuf {
    fn new() -> Self {
        let layout = std::alloc::Layout::from_size_align(BYTES, 2 << 20).expect("layout");
        // SAFETY: a non-zero size.
        let p = unsafe { std::alloc::alloc(layout) }.cast::<u64>();
        assert!(!p.is_null(), "{BYTES} bytes for the huge-page buffer");
        #[cfg(target_os = "linux")]
        // SAFETY: the range is this allocation, not yet touched.
        unsafe {
            libc::madvise(p.cast(), BYTES, libc::MADV_HUGEPAGE);
        }
        for i in 0..BYTES / 8 {
            // SAFETY: inside the allocation.
            unsafe { p.add(i).write(i as u64) };
        }
        Self(p, layout)
    }

    fn words(&self) -> &[u64] {
        // SAFETY: every word was written in `new`.
        unsafe { std::slice::from_raw_parts(self.0, BYTES / 8) }
    }
}

impl Drop for HugeBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.0.cast(), self.1) }
    }
}

fn bandwidth(c: &mut Criterion) {
    // Filled with non-zero values so every page is really backed.
    let plain: Vec<u64> = (0..BYTES / 8).map(|i| i as u64).collect();
    let huge = HugeBuf::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut g = c.benchmark_group("memory");
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.sample_size(20);
    for (pages, buf) in [("", &plain[..]), ("_hugepages", huge.words())] {
        for (name, f) in [("stream_read", sum as fn(&[u64]) -> u64), ("stream_read_prefetch", sum_prefetched)] {
            g.bench_function(format!("{name}{pages}_1_thread"), |b| b.iter(|| black_box(f(black_box(buf)))));
            g.bench_function(format!("{name}{pages}_{cpus}_threads"), |b| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        let parts: Vec<_> =
                            buf.chunks(buf.len().div_ceil(cpus)).map(|p| s.spawn(move || f(p))).collect();
                        black_box(parts.into_iter().map(|h| h.join().expect("reader")).fold(0u64, u64::wrapping_add))
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bandwidth);
criterion_main!(benches);
