//! The only file that touches llama.cpp's C API: owned handles for a model and a context, one-time backend
//! initialisation, and llama.cpp's log routed to stderr (warnings and errors kept for error messages).

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::{Mutex, Once};

use llama_cpp_sys_2 as sys;

static INIT: Once = Once::new();

/// The last warnings and errors llama.cpp logged, so a failed call can say why.
static RECENT: Mutex<Vec<String>> = Mutex::new(Vec::new());
const RECENT_KEEP: usize = 8;
/// llama.cpp's last `offloaded N/M layers to GPU` line: how much of a model a GPU took.
static OFFLOADED: Mutex<Option<String>> = Mutex::new(None);

unsafe extern "C" fn log_callback(level: sys::ggml_log_level, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for the duration of the call.
    let line = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let line = line.trim_end();
    if line.contains("layers to GPU") && line.contains("offloaded") {
        if let Ok(mut o) = OFFLOADED.lock() {
            *o = Some(line.to_string());
        }
    }
    let important = level == sys::GGML_LOG_LEVEL_WARN || level == sys::GGML_LOG_LEVEL_ERROR;
    if important && !line.is_empty() {
        if let Ok(mut recent) = RECENT.lock() {
            if recent.len() == RECENT_KEEP {
                recent.remove(0);
            }
            recent.push(line.to_string());
        }
    }
    if important || std::env::var_os("EDGEBENCH_LLAMACPP_LOG").is_some() {
        eprintln!("llama.cpp: {line}");
    }
}

/// Initialises llama.cpp once per process and installs the log callback.
pub fn init() {
    INIT.call_once(|| {
        // SAFETY: called once, before any other llama.cpp call; the callback is a plain function.
        unsafe {
            sys::llama_log_set(Some(log_callback), std::ptr::null_mut());
            sys::llama_backend_init();
        }
    });
}

/// Takes the warnings and errors logged since the last call, joined for an error message.
pub fn take_recent_log() -> String {
    RECENT.lock().map(|mut r| std::mem::take(&mut *r).join("; ")).unwrap_or_default()
}

fn c_str(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: llama.cpp returns static NUL-terminated strings from these getters.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// llama.cpp's compile-time CPU features, e.g. `CPU : SSE3 = 1 | AVX2 = 1 | … | REPACK = 1 |`.
pub fn system_info() -> String {
    static INFO: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INFO.get_or_init(|| {
        init();
        // SAFETY: llama.cpp rebuilds a function-static std::string on every call, so concurrent calls corrupt the
        // heap (seen: SIGSEGV / "double free or corruption" with 6 test threads); it is called once, here.
        c_str(unsafe { sys::llama_print_system_info() }).trim().to_string()
    })
    .clone()
}

/// llama.cpp's `offloaded N/M layers to GPU` line since the last call, if it logged one.
pub fn take_offloaded_line() -> Option<String> {
    OFFLOADED.lock().ok().and_then(|mut o| o.take())
}

/// One GPU among ggml's registered devices.
#[derive(Debug, Clone)]
pub struct GpuDevice {
    /// ggml's name for it (`CUDA0`).
    pub name: String,
    /// The device's own name (`NVIDIA H200`).
    pub description: String,
    /// Device memory in bytes, free and total, when asked.
    pub memory: (usize, usize),
}

/// ggml's GPU devices, in ggml's order.
fn gpu_handles() -> Vec<sys::ggml_backend_dev_t> {
    init();
    // SAFETY: the registry is built by llama_backend_init; its handles live as long as the process.
    unsafe {
        (0..sys::ggml_backend_dev_count())
            .map(|i| sys::ggml_backend_dev_get(i))
            .filter(|&d| !d.is_null() && sys::ggml_backend_dev_type(d) == sys::GGML_BACKEND_DEVICE_TYPE_GPU)
            .collect()
    }
}

/// The GPUs ggml's backends found, in ggml's order (a CPU-only build has none).
pub fn gpu_devices() -> Vec<GpuDevice> {
    // SAFETY: handles from the registry; the strings they return live as long as it.
    unsafe {
        gpu_handles()
            .into_iter()
            .map(|d| {
                let (mut free, mut total) = (0usize, 0usize);
                sys::ggml_backend_dev_memory(d, &mut free, &mut total);
                GpuDevice {
                    name: c_str(sys::ggml_backend_dev_name(d)),
                    description: c_str(sys::ggml_backend_dev_description(d)),
                    memory: (free, total),
                }
            })
            .collect()
    }
}

/// ggml's version and commit as compiled in.
pub fn ggml_version() -> (String, String) {
    // SAFETY: static strings.
    unsafe { (c_str(sys::ggml_version()), c_str(sys::ggml_commit())) }
}

/// Model-load settings.
#[derive(Debug, Clone, Copy)]
pub struct ModelParams {
    /// Memory-map the file (llama.cpp's default) or read it into anonymous memory.
    pub mmap: bool,
    /// Allow CPU weight repacking ("extra buffer types").
    pub repack: bool,
    /// Layers to offload to a GPU (0 = CPU only, -1 = all).
    pub n_gpu_layers: i32,
    /// The GPU to offload to, as an ordinal among ggml's GPUs (the only device the model may use); with
    /// `n_gpu_layers` 0 the model may use no GPU at all, not even for llama.cpp's offload of large batches.
    pub main_gpu: i32,
    /// Load the vocabulary only (no tensors): for tokenizing.
    pub vocab_only: bool,
}

/// An owned `llama_model`.
pub struct Model(NonNull<sys::llama_model>);

impl Model {
    /// Loads `path`; the error carries llama.cpp's own reason.
    pub fn load(path: &Path, p: ModelParams) -> Result<Model, String> {
        init();
        let cpath = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| "path contains a NUL byte")?;
        take_recent_log();
        take_offloaded_line();
        // The devices the model may use: a NULL-terminated list llama.cpp copies at load (NULL itself: every GPU).
        let mut devices: Vec<sys::ggml_backend_dev_t> = vec![std::ptr::null_mut()];
        if p.n_gpu_layers != 0 {
            let gpu = gpu_handles().get(p.main_gpu.max(0) as usize).copied();
            devices.insert(0, gpu.ok_or_else(|| format!("no GPU {} among ggml's devices", p.main_gpu))?);
        }
        // SAFETY: default params are plain data; the path and the device list outlive the call.
        let raw = unsafe {
            let mut mp = sys::llama_model_default_params();
            mp.load_mode = if p.mmap { sys::LLAMA_LOAD_MODE_MMAP } else { sys::LLAMA_LOAD_MODE_NONE };
            mp.use_extra_bufts = p.repack;
            mp.n_gpu_layers = p.n_gpu_layers;
            mp.devices = devices.as_mut_ptr();
            // One device, the one asked for (index 0 of the list): no layers split across other GPUs.
            mp.split_mode = sys::LLAMA_SPLIT_MODE_NONE;
            mp.main_gpu = 0;
            mp.vocab_only = p.vocab_only;
            sys::llama_model_load_from_file(cpath.as_ptr(), mp)
        };
        NonNull::new(raw).map(Model).ok_or_else(|| {
            let why = take_recent_log();
            if why.is_empty() {
                "llama.cpp could not load the model".into()
            } else {
                format!("llama.cpp: {why}")
            }
        })
    }

    /// Tokens in the vocabulary (logits per position).
    pub fn n_vocab(&self) -> usize {
        // SAFETY: the model is valid while self lives; the vocab belongs to it.
        unsafe { sys::llama_vocab_n_tokens(sys::llama_model_get_vocab(self.0.as_ptr())) }.max(0) as usize
    }

    /// llama.cpp's own tokenization of `text` (`add_special`: BOS as the vocabulary asks; `parse_special`: control
    /// token text becomes the token).
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>, String> {
        let len = i32::try_from(text.len()).map_err(|_| "text too long")?;
        let mut out = vec![0i32; text.len() + 8];
        // SAFETY: valid model and vocab; `text` is read for `len` bytes; at most `out.len()` tokens are written.
        let n = unsafe {
            sys::llama_tokenize(
                sys::llama_model_get_vocab(self.0.as_ptr()),
                text.as_ptr().cast(),
                len,
                out.as_mut_ptr(),
                out.len() as i32,
                add_special,
                parse_special,
            )
        };
        if n < 0 {
            return Err(format!("llama_tokenize needs {} tokens", -n));
        }
        Ok(out[..n as usize].iter().map(|&t| t as u32).collect())
    }

    /// Context length the model was trained with.
    pub fn n_ctx_train(&self) -> usize {
        // SAFETY: valid model.
        unsafe { sys::llama_model_n_ctx_train(self.0.as_ptr()) }.max(0) as usize
    }

    /// llama.cpp's one-line description, e.g. `llama ?B Q4_1`.
    pub fn desc(&self) -> String {
        let mut buf = [0u8; 256];
        // SAFETY: llama_model_desc writes at most buf.len() bytes including the NUL.
        let n = unsafe { sys::llama_model_desc(self.0.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        String::from_utf8_lossy(&buf[..n.clamp(0, buf.len() as i32 - 1) as usize]).into_owned()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: every context made from this model is freed first (contexts borrow the model).
        unsafe { sys::llama_model_free(self.0.as_ptr()) }
    }
}

/// Context settings.
#[derive(Debug, Clone, Copy)]
pub struct ContextParams {
    /// KV-cache positions.
    pub n_ctx: u32,
    /// Logical batch (tokens per `llama_decode`).
    pub n_batch: u32,
    /// Physical micro-batch.
    pub n_ubatch: u32,
    /// Compute threads for decode and for batches.
    pub threads: i32,
    /// `LLAMA_FLASH_ATTN_TYPE_*`.
    pub flash_attn: sys::llama_flash_attn_type,
}

/// An owned `llama_context` with a reusable batch. Not `Send`: llama.cpp contexts stay on one thread here.
pub struct Context {
    ctx: NonNull<sys::llama_context>,
    batch: sys::llama_batch,
    batch_cap: usize,
    // A persistent CPU threadpool attached to the context, as llama-bench does; without one, ggml builds and frees
    // a disposable pool on every graph computation.
    threadpool: Option<NonNull<sys::ggml_threadpool>>,
}

/// Why a decode failed.
#[derive(Debug)]
pub enum DecodeError {
    /// No room left in the KV cache (llama_decode returned 1).
    NoKvSlot,
    /// Any other failure, with llama.cpp's code and log.
    Failed(i32, String),
}

/// Which tokens of a batch llama.cpp computes logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// None (a prompt chunk that is not the last).
    None,
    /// The last token.
    Last,
    /// Every token (teacher forcing).
    All,
}

impl Context {
    /// A context on `model`. The caller must drop it before the model.
    pub fn new(model: &Model, p: ContextParams) -> Result<Context, String> {
        take_recent_log();
        // SAFETY: plain-data params; the model is valid.
        let raw = unsafe {
            let mut cp = sys::llama_context_default_params();
            cp.n_ctx = p.n_ctx;
            cp.n_batch = p.n_batch;
            cp.n_ubatch = p.n_ubatch;
            cp.n_seq_max = 1;
            cp.n_threads = p.threads;
            cp.n_threads_batch = p.threads;
            cp.flash_attn_type = p.flash_attn;
            cp.no_perf = true;
            sys::llama_init_from_model(model.0.as_ptr(), cp)
        };
        let ctx =
            NonNull::new(raw).ok_or_else(|| format!("llama.cpp could not create a context: {}", take_recent_log()))?;
        // SAFETY: default params are plain data; the pool lives until Drop detaches and frees it.
        let threadpool = unsafe {
            let mut tpp = sys::ggml_threadpool_params_default(p.threads);
            let tp = NonNull::new(sys::ggml_threadpool_new(&mut tpp));
            if let Some(tp) = tp {
                sys::llama_attach_threadpool(ctx.as_ptr(), tp.as_ptr(), tp.as_ptr());
            }
            tp
        };
        // SAFETY: the batch holds n_batch tokens for one sequence and is freed in Drop.
        let batch_cap = unsafe { sys::llama_n_batch(ctx.as_ptr()) } as usize;
        let batch = unsafe { sys::llama_batch_init(batch_cap as i32, 0, 1) };
        Ok(Context { ctx, batch, batch_cap, threadpool })
    }

    /// KV-cache positions this context holds.
    pub fn n_ctx(&self) -> usize {
        // SAFETY: valid context.
        unsafe { sys::llama_n_ctx(self.ctx.as_ptr()) as usize }
    }

    /// Tokens per decode call.
    pub fn n_batch(&self) -> usize {
        self.batch_cap
    }

    /// Forgets every position (KV cache cleared, buffers kept).
    pub fn clear(&mut self) {
        // SAFETY: valid context; the memory handle belongs to it.
        unsafe { sys::llama_memory_clear(sys::llama_get_memory(self.ctx.as_ptr()), true) }
    }

    /// Decodes `tokens` at positions `pos..`, asking for the logits of none, the last or every one of them.
    pub fn decode(&mut self, tokens: &[u32], pos: usize, want: Outputs) -> Result<(), DecodeError> {
        assert!(!tokens.is_empty() && tokens.len() <= self.batch_cap, "batch of {} tokens", tokens.len());
        let b = &mut self.batch;
        // SAFETY: llama_batch_init allocated batch_cap entries for each array and one seq id per token.
        unsafe {
            for (i, &t) in tokens.iter().enumerate() {
                *b.token.add(i) = t as sys::llama_token;
                *b.pos.add(i) = (pos + i) as sys::llama_pos;
                *b.n_seq_id.add(i) = 1;
                *(*b.seq_id.add(i)) = 0;
                *b.logits.add(i) = i8::from(want == Outputs::All);
            }
            *b.logits.add(tokens.len() - 1) = i8::from(want != Outputs::None);
        }
        b.n_tokens = tokens.len() as i32;
        take_recent_log();
        // SAFETY: valid context and batch.
        let batch = *b;
        match unsafe { sys::llama_decode(self.ctx.as_ptr(), batch) } {
            0 => Ok(()),
            1 => Err(DecodeError::NoKvSlot),
            code => Err(DecodeError::Failed(code, take_recent_log())),
        }
    }

    /// Logits of output `i` of the last decode (`Outputs::All`: one per token): `n_vocab` values.
    pub fn logits_ith(&self, i: usize, n_vocab: usize) -> Option<&[f32]> {
        // SAFETY: as in last_logits; llama.cpp checks `i` against the outputs it holds and returns NULL otherwise.
        let p = unsafe { sys::llama_get_logits_ith(self.ctx.as_ptr(), i as i32) };
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p, n_vocab) })
    }

    /// Logits of the last token of the last decode (which asked for them): `n_vocab` values.
    pub fn last_logits(&self, n_vocab: usize) -> Option<&[f32]> {
        // SAFETY: -1 selects the last output; llama.cpp returns NULL (and logs) when there is none. The slice lives
        // until the next decode, which needs &mut self.
        let p = unsafe { sys::llama_get_logits_ith(self.ctx.as_ptr(), -1) };
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p, n_vocab) })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: all were allocated in new() and are freed once; the pool after the context stops using it.
        unsafe {
            sys::llama_batch_free(self.batch);
            sys::llama_detach_threadpool(self.ctx.as_ptr());
            sys::llama_free(self.ctx.as_ptr());
            if let Some(tp) = self.threadpool {
                sys::ggml_threadpool_free(tp.as_ptr());
            }
        }
    }
}
