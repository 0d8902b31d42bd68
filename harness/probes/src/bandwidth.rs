//! This machine's streaming read bandwidth, the ceiling of memory-bound decode: a buffer far larger than the
//! last-level cache summed (8 independent u64 lanes, which the compiler vectorizes) by N threads, each its own
//! contiguous part, as a plain loop and prefetching 16 KiB ahead in software (x86-64; as the native engine's
//! matrix-vector kernels do, and on some CPUs the hardware prefetcher alone reads much slower), over ordinary 4 KiB
//! pages and over 2 MiB-aligned memory advised as transparent huge pages (as the native engine keeps its weights).
//! Decode's weight bandwidth (weight bytes a token × tokens/s) over the fastest loop is how close a backend is to the
//! physical limit. The `memory_bandwidth` bench and `edgebench run --memory-bandwidth` both read through here.

use std::time::Instant;

use edgebench_core::results::MemoryBandwidth;

/// The buffer size the bench reads, and `edgebench run --memory-bandwidth` at most: 512 MiB, far above any
/// last-level cache the project's machines have.
pub const BYTES: usize = 512 << 20;

/// The smallest buffer [`buffer_bytes`] accepts: still several times a large last-level cache.
pub const MIN_BYTES: usize = 64 << 20;

/// The buffer a run's probe reads: [`BYTES`], or a quarter of the memory available now when that is less (one
/// buffer is alive at a time), in whole MiB; an error naming both when that is under [`MIN_BYTES`].
pub fn buffer_bytes() -> Result<usize, String> {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    let available = sys.available_memory() as usize;
    let bytes = BYTES.min(available / 4) >> 20 << 20;
    if bytes < MIN_BYTES {
        return Err(format!(
            "{} MiB of memory available, a quarter of it under the probe's {} MiB minimum",
            available >> 20,
            MIN_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// Bytes ahead of the reads that [`sum_prefetched`] prefetches.
const AHEAD: usize = 16 << 10;

/// The wrapping sum of `words` in 8 lanes.
pub fn sum(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let lines = words.chunks_exact(8);
    let tail = lines.remainder().iter().fold(0u64, |s, &w| s.wrapping_add(w));
    for c in lines {
        for (a, &w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(w);
        }
    }
    acc.iter().fold(tail, |s, &a| s.wrapping_add(a))
}

/// As [`sum`], prefetching [`AHEAD`] bytes ahead of each 64-byte line it reads (a plain sum elsewhere than x86-64).
pub fn sum_prefetched(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let lines = words.chunks_exact(8);
    let tail = lines.remainder().iter().fold(0u64, |s, &w| s.wrapping_add(w));
    for c in lines {
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
    acc.iter().fold(tail, |s, &a| s.wrapping_add(a))
}

/// `f` over `buf` split into `threads` contiguous parts of whole 64-byte lines (the last takes the rest), one scoped
/// thread each (the caller's thread when 1).
pub fn read_parallel(buf: &[u64], threads: usize, f: ReadLoop) -> u64 {
    if threads <= 1 {
        return f(buf);
    }
    std::thread::scope(|s| {
        let part = buf.len().div_ceil(threads).next_multiple_of(8);
        let parts: Vec<_> = buf.chunks(part).map(|p| s.spawn(move || f(p))).collect();
        parts.into_iter().map(|h| h.join().expect("a reader thread")).fold(0u64, u64::wrapping_add)
    })
}

/// A buffer of u64 words, filled with non-zero values so every page is really backed: in 2 MiB-aligned memory
/// advised as transparent huge pages when `huge` (Linux; where the system does not grant them, ordinary pages).
pub struct Buffer {
    ptr: *mut u64,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer owns its allocation and is only read after construction.
unsafe impl Sync for Buffer {}
// SAFETY: as above.
unsafe impl Send for Buffer {}

impl Buffer {
    /// `bytes` (rounded down to whole words, at least one), filled; `None` when the allocation fails.
    pub fn new(bytes: usize, huge: bool) -> Option<Buffer> {
        let words = (bytes / 8).max(1);
        let layout = std::alloc::Layout::from_size_align(words * 8, if huge { 2 << 20 } else { 64 }).ok()?;
        // SAFETY: a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) }.cast::<u64>();
        if ptr.is_null() {
            return None;
        }
        #[cfg(target_os = "linux")]
        if huge {
            // SAFETY: the range is this allocation, not yet touched. Advice only: its failure leaves small pages.
            unsafe { libc::madvise(ptr.cast(), words * 8, libc::MADV_HUGEPAGE) };
        }
        for i in 0..words {
            // SAFETY: inside the allocation.
            unsafe { ptr.add(i).write(i as u64 | 1) };
        }
        Some(Buffer { ptr, layout })
    }

    /// The words.
    pub fn words(&self) -> &[u64] {
        // SAFETY: every word was written in `new`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size() / 8) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.cast(), self.layout) }
    }
}

/// A read loop: the wrapping sum of the words it reads.
pub type ReadLoop = fn(&[u64]) -> u64;

/// The loops [`measure`] times: name and function.
pub const LOOPS: [(&str, ReadLoop); 2] = [("plain", sum), ("prefetching", sum_prefetched)];

/// Streaming read bandwidth with each of `threads`: every loop of [`LOOPS`] over a huge-page buffer of `bytes`,
/// then over an ordinary one (one alive at a time), `repetitions` times each after one untimed pass; each thread
/// count's reading (one pass) is the loop and buffer with the highest median. `None` when a buffer cannot be
/// allocated.
pub fn measure(threads: &[usize], bytes: usize, repetitions: usize) -> Option<Vec<MemoryBandwidth>> {
    let reps = repetitions.max(1);
    let mut readings: Vec<MemoryBandwidth> = threads
        .iter()
        .map(|&t| MemoryBandwidth {
            threads: t,
            buffer_mib: (bytes >> 20) as u64,
            repetitions: reps,
            ..MemoryBandwidth::default()
        })
        .collect();
    for (pages, huge) in [("2 MiB huge pages", true), ("4 KiB pages", false)] {
        let buf = Buffer::new(bytes, huge)?;
        let words = buf.words();
        for best in &mut readings {
            let t = best.threads;
            for (name, f) in LOOPS {
                std::hint::black_box(read_parallel(words, t, f));
                let mut rates: Vec<f64> = (0..reps)
                    .map(|_| {
                        let start = Instant::now();
                        std::hint::black_box(read_parallel(std::hint::black_box(words), t, f));
                        (words.len() * 8) as f64 / start.elapsed().as_secs_f64() / (1u64 << 30) as f64
                    })
                    .collect();
                rates.sort_by(f64::total_cmp);
                let median = rates[rates.len() / 2];
                if median > best.gib_s {
                    best.gib_s = median;
                    best.method = format!("{name}, {pages}");
                }
            }
        }
    }
    for r in &mut readings {
        r.passes_gib_s = vec![r.gib_s];
    }
    Some(readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loop_sums_every_word_whatever_the_thread_count() {
        let buf = Buffer::new((1 << 20) + 40, true).unwrap();
        let want = buf.words().iter().fold(0u64, |s, &w| s.wrapping_add(w));
        for (name, f) in LOOPS {
            for threads in [1, 2, 3] {
                assert_eq!(read_parallel(buf.words(), threads, f), want, "{name}, {threads} threads");
            }
        }
    }

    #[test]
    fn the_run_buffer_is_whole_mib_between_the_bounds_or_a_reason() {
        match buffer_bytes() {
            Ok(b) => assert!((MIN_BYTES..=BYTES).contains(&b) && b % (1 << 20) == 0, "{b}"),
            Err(why) => assert!(why.contains("MiB of memory available"), "{why}"),
        }
    }

    #[test]
    fn a_reading_per_thread_count_names_its_loop() {
        let r = measure(&[1, 2], 4 << 20, 2).unwrap();
        assert_eq!(r.iter().map(|m| m.threads).collect::<Vec<_>>(), [1, 2]);
        for m in &r {
            assert!(m.gib_s.is_finite() && m.gib_s > 0.0, "{m:?}");
            assert!(LOOPS.iter().any(|(name, _)| m.method.starts_with(name)), "{m:?}");
            assert_eq!((m.buffer_mib, m.repetitions, &m.passes_gib_s[..]), (4, 2, &[m.gib_s][..]));
        }
    }
}
