//! Weight memory: large chunks aligned to 2 MiB and, on Linux, advised as transparent huge pages, so a decode step's
//! stream through every matrix takes one TLB entry per 2 MiB instead of one per 4 KiB page (and the hardware
//! prefetchers, which stop at page boundaries, run on). Without the advice (other systems, or huge pages off) the
//! chunks are ordinary memory.

use std::alloc::{alloc, dealloc, Layout};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

/// A transparent huge page on x86-64 and most arm64 Linux systems.
const HUGE_PAGE: usize = 2 << 20;

/// Bytes reserved at a time; a tensor larger than this gets a chunk of its own. Untouched memory costs nothing.
const CHUNK: usize = 64 << 20;

/// Where each tensor starts in a chunk (a cache line).
const ALIGN: usize = 64;

/// One allocation; bytes are written once, before the [`Bytes`] that covers them is handed out.
struct Chunk {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the chunk is plain memory; each byte is written once, before any `Bytes` covering it exists, and only read
// after.
unsafe impl Send for Chunk {}
// SAFETY: as above.
unsafe impl Sync for Chunk {}

impl Chunk {
    fn new(size: usize) -> Option<Self> {
        let layout = Layout::from_size_align(size.next_multiple_of(HUGE_PAGE), HUGE_PAGE).ok()?;
        // SAFETY: the layout's size is non-zero (at least one huge page).
        let ptr = NonNull::new(unsafe { alloc(layout) })?;
        #[cfg(target_os = "linux")]
        // SAFETY: the range is this allocation; the advice changes how it is backed, not its contents (none yet).
        unsafe {
            libc::madvise(ptr.as_ptr().cast(), layout.size(), libc::MADV_HUGEPAGE);
        }
        Some(Self { ptr, layout })
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: allocated in `Chunk::new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A tensor's bytes in the arena.
#[derive(Clone)]
pub struct Bytes {
    chunk: Arc<Chunk>,
    off: usize,
    len: usize,
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `off..off + len` lies inside the chunk and was written before this `Bytes` was made.
        unsafe { std::slice::from_raw_parts(self.chunk.ptr.as_ptr().add(self.off), self.len) }
    }
}

/// Copies a model's tensors into huge-page chunks, one after another.
#[derive(Default)]
pub struct Arena {
    chunk: Option<(Arc<Chunk>, usize)>,
}

impl Arena {
    /// A copy of `data` in the arena, or `None` when the memory cannot be had.
    pub fn copy(&mut self, data: &[u8]) -> Option<Bytes> {
        let fits = |c: &(Arc<Chunk>, usize)| c.1.next_multiple_of(ALIGN) + data.len() <= c.0.layout.size();
        if !self.chunk.as_ref().is_some_and(fits) {
            self.chunk = Some((Arc::new(Chunk::new(data.len().max(CHUNK))?), 0));
        }
        let (chunk, used) = self.chunk.as_mut().expect("a chunk was just made");
        let off = used.next_multiple_of(ALIGN);
        // SAFETY: `off + len` fits (checked above) and no `Bytes` covers these bytes yet.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), chunk.ptr.as_ptr().add(off), data.len()) };
        *used = off + data.len();
        Some(Bytes { chunk: chunk.clone(), off, len: data.len() })
    }
}

/// How the weights' memory is backed, for the results' notes: the advice, and this system's transparent huge page
/// mode (`always` and `madvise` honour it; `never` does not).
pub fn describe() -> String {
    if !cfg!(target_os = "linux") {
        return "weights in ordinary pages (huge-page advice is Linux-only)".into();
    }
    let path = "/sys/kernel/mm/transparent_hugepage/enabled";
    let mode = std::fs::read_to_string(path).ok().and_then(|s| {
        let (_, rest) = s.split_once('[')?;
        rest.split_once(']').map(|(m, _)| m.to_string())
    });
    match mode.as_deref() {
        Some(m @ ("always" | "madvise")) => {
            format!("weights in 2 MiB transparent huge pages (advised; this system's mode: {m})")
        }
        Some(m) => format!("weights in ordinary pages: this system's transparent huge pages are {m}"),
        None => format!("weights advised as 2 MiB transparent huge pages ({path} unreadable: granted or not unknown)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_their_bytes_across_chunks() {
        let mut arena = Arena::default();
        let small: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let big: Vec<u8> = (0..CHUNK + 5).map(|i| (i % 251) as u8).collect();
        let a = arena.copy(&small).unwrap();
        let b = arena.copy(&big).unwrap();
        let c = arena.copy(&small[..3]).unwrap();
        let d = arena.copy(&[]).unwrap();
        assert_eq!(&a[..], &small[..]);
        assert_eq!(&b[..], &big[..]);
        assert_eq!(&c[..], &small[..3]);
        assert!(d.is_empty());
        assert!((a.as_ptr() as usize).is_multiple_of(ALIGN) && (c.as_ptr() as usize).is_multiple_of(ALIGN));
        assert!(!Arc::ptr_eq(&a.chunk, &b.chunk), "a tensor larger than a chunk gets its own");
        drop(arena);
        assert_eq!(&a[..], &small[..], "bytes outlive the arena");
    }
}
