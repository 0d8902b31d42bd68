//! A fixed pool of compute threads for one loaded model: `threads − 1` workers plus the calling thread, so a
//! forward pass never uses more cores than `--threads`. Workers spin briefly after each job (the next one usually
//! follows within microseconds inside a forward pass) and then sleep on a condition variable, so an idle model, or
//! the harness's work between tokens, burns no cores.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_micros(200);

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once per job; workers run the job when they see a new value.
    generation: AtomicUsize,
    /// Workers still running the current job.
    pending: AtomicUsize,
    /// Workers asleep (or about to be) on `wake`.
    sleepers: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
    /// Written only by the dispatching thread while no worker runs a job (`pending == 0`), read by workers after
    /// they observe the new generation.
    job: UnsafeCell<Option<Job>>,
}

// SAFETY: `job` is written only while no worker reads it (see the field), and the closure it points to is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

/// The pool. Jobs are dispatched from one thread at a time (`&mut self`).
pub struct Pool {
    threads: usize,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool of `threads` (at least 1) compute threads, the caller included.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            job: UnsafeCell::new(None),
        });
        let handles = (1..threads)
            .map(|tid| {
                let s = shared.clone();
                std::thread::Builder::new().name(format!("edgebench-native-{tid}")).spawn(move || worker(&s, tid))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self { threads, shared, handles })
    }

    /// Compute threads, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(tid)` for every `tid` in `0..threads` (tid 0 on the calling thread) and returns when all are done.
    /// A panic in any of them is reported as an error after all have finished.
    pub fn run(&mut self, f: &(dyn Fn(usize) + Sync)) -> Result<(), String> {
        if self.threads == 1 {
            return catch_unwind(AssertUnwindSafe(|| f(0))).map_err(|_| "a compute thread panicked".to_string());
        }
        let s = &*self.shared;
        // SAFETY: no worker is running a job (the previous `run` waited for pending == 0), so none reads `job`; the
        // pointer is erased to 'static but only used before this function returns, after every worker finished.
        unsafe {
            let job: Job = std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f);
            *s.job.get() = Some(job);
        }
        s.pending.store(self.threads - 1, SeqCst);
        s.generation.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        crate::profile::timed!(crate::profile::Stage::Wait, {
            while s.pending.load(Acquire) != 0 {
                std::hint::spin_loop();
            }
        });
        let theirs = s.panicked.swap(false, SeqCst);
        if mine.is_err() || theirs {
            return Err("a compute thread panicked".into());
        }
        Ok(())
    }
}

fn worker(s: &Shared, tid: usize) {
    let mut seen = 0usize;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.generation.load(Acquire) != seen || s.shutdown.load(Acquire) {
                break;
            }
            spins += 1;
            if spins.is_multiple_of(64) && start.elapsed() > SPIN {
                let mut g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, SeqCst);
                while s.generation.load(SeqCst) == seen && !s.shutdown.load(SeqCst) {
                    g = s.wake.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                s.sleepers.fetch_sub(1, SeqCst);
                break;
            }
            std::hint::spin_loop();
        }
        if s.shutdown.load(Acquire) {
            return;
        }
        seen = s.generation.load(Acquire);
        // SAFETY: the dispatcher wrote `job` before bumping the generation we just read and keeps the closure alive
        // until `pending` reaches 0, which happens only after this call.
        let job = unsafe { (*s.job.get()).expect("a job is set before the generation moves") };
        // SAFETY: as above.
        let r = catch_unwind(AssertUnwindSafe(|| unsafe { (*job)(tid) }));
        if r.is_err() {
            s.panicked.store(true, SeqCst);
        }
        s.pending.fetch_sub(1, Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The `tid`-th of `parts` contiguous pieces of `0..n`, piece boundaries rounded to multiples of `align`.
pub fn split(n: usize, parts: usize, tid: usize, align: usize) -> std::ops::Range<usize> {
    let units = n.div_ceil(align);
    let (a, b) = (units * tid / parts, units * (tid + 1) / parts);
    (a * align).min(n)..(b * align).min(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_thread_runs_each_job_once() {
        for threads in [1, 2, 3, 5] {
            let mut pool = Pool::new(threads).unwrap();
            let hits: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
            for round in 0..200 {
                if round % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(2)); // let workers fall asleep
                }
                pool.run(&|tid| {
                    hits[tid].fetch_add(1, SeqCst);
                })
                .unwrap();
            }
            assert!(hits.iter().all(|h| h.load(SeqCst) == 200), "{threads} threads: {hits:?}");
        }
    }

    #[test]
    fn a_panicking_job_is_an_error_and_the_pool_survives() {
        let mut pool = Pool::new(2).unwrap();
        assert!(pool.run(&|tid| assert!(tid != 1, "boom")).is_err());
        let n = AtomicU64::new(0);
        pool.run(&|_| {
            n.fetch_add(1, SeqCst);
        })
        .unwrap();
        assert_eq!(n.load(SeqCst), 2);
    }

    #[test]
    fn split_covers_the_range_in_aligned_pieces() {
        for (n, parts, align) in [(960, 2, 4), (49152, 3, 4), (7, 4, 4), (1, 2, 1), (576, 1, 64)] {
            let mut next = 0;
            for tid in 0..parts {
                let r = split(n, parts, tid, align);
                assert_eq!(r.start, next);
                assert!(r.start.is_multiple_of(align) || r.start == n);
                next = r.end;
            }
            assert_eq!(next, n);
        }
    }
}
