//! The forward pass: a session's KV cache and scratch buffers, batched prefill (matrix-matrix) and decode
//! (matrix-vector) through the same code, every matrix product and the attention split across the model's pool.

use std::sync::Mutex;

use edgebench_core::BackendError;
use edgebench_gguf::quant;
use edgebench_kernels::{matmul_rows, KernelSet, OutMatrix, QuantActs, WeightMatrix};

use crate::model::{Weight, Weights};
use crate::ops;
use crate::pool::{split, Pool};

/// Weight rows per unit of work handed to a thread (the kernels' tile height).
const ROW_ALIGN: usize = 4;

/// What a forward pass needs from the loaded model.
pub struct Engine {
    /// Weights and hyper-parameters.
    pub w: Weights,
    /// The kernel path.
    pub ks: KernelSet,
    /// Compute threads (one forward pass at a time).
    pub pool: Mutex<Pool>,
}

/// A raw pointer to a buffer that threads write in disjoint parts.
#[derive(Clone, Copy)]
struct Shared(*mut f32, usize);
// SAFETY: used only for disjoint writes while the buffer is borrowed mutably by the dispatching call.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// # Safety
    /// `[start, start + len)` is in bounds and written by one thread only.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.1, "shared slice out of bounds");
        // SAFETY: in bounds (asserted), one writer (the caller's contract).
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// A session's state: per-layer K and V rows (f32, `n_head_kv × head_dim` per position) and reusable buffers.
pub struct State {
    /// Positions consumed.
    pub pos: usize,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    acts: QuantActs,
    x: Vec<f32>,
    q: Vec<f32>,
    kn: Vec<f32>,
    vn: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    g: Vec<f32>,
    u: Vec<f32>,
}

impl State {
    /// An empty cache for `layers` blocks.
    pub fn new(layers: usize) -> Self {
        Self {
            pos: 0,
            k: vec![Vec::new(); layers],
            v: vec![Vec::new(); layers],
            acts: QuantActs::new(),
            x: Vec::new(),
            q: Vec::new(),
            kn: Vec::new(),
            vn: Vec::new(),
            att: Vec::new(),
            o: Vec::new(),
            g: Vec::new(),
            u: Vec::new(),
        }
    }
}

fn resize(v: &mut Vec<f32>, n: usize) {
    v.clear();
    v.resize(n, 0.0);
}

fn rt(e: String) -> BackendError {
    BackendError::Runtime(e)
}

impl Engine {
    /// `out_i = W_i · acts` for several matrices sharing the activations, rows of all of them split across threads.
    fn matmuls(
        &self,
        pool: &mut Pool,
        acts: &QuantActs,
        jobs: &mut [(&Weight, &mut Vec<f32>)],
    ) -> Result<(), BackendError> {
        let n = acts.n();
        let mats: Vec<(WeightMatrix<'_>, OutMatrix)> = jobs
            .iter_mut()
            .map(|(w, out)| {
                resize(out, n * w.rows);
                // SAFETY: `out` stays borrowed (and unread) until the pool job below has returned.
                (w.matrix(), unsafe { OutMatrix::new(out, w.rows) })
            })
            .collect();
        let total: usize = mats.iter().map(|(m, _)| m.rows).sum();
        let nt = pool.threads();
        let ks = &self.ks;
        pool.run(&|tid| {
            let mine = split(total, nt, tid, ROW_ALIGN);
            let mut base = 0;
            for (m, out) in &mats {
                let (lo, hi) = (mine.start.max(base), mine.end.min(base + m.rows));
                if lo < hi {
                    // SAFETY: each thread owns a disjoint row range of the concatenated outputs.
                    unsafe { matmul_rows(ks, m, lo - base..hi - base, acts, out) };
                }
                base += m.rows;
            }
        })
        .map_err(rt)
    }

    /// `acts` = `f(j, row)` for each of `n` rows of `k` values, rows split across threads, each row quantized by
    /// the thread that wrote it.
    fn fill_acts(
        &self,
        pool: &mut Pool,
        acts: &mut QuantActs,
        n: usize,
        k: usize,
        f: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<(), BackendError> {
        let wr = acts.writer(&self.ks, n, k, true);
        let nt = pool.threads();
        if n < nt {
            // Decode: one row is not worth waking the other threads.
            for j in 0..n {
                // SAFETY: this thread is the only writer.
                unsafe { wr.write(j, |row| f(j, row)) };
            }
            return Ok(());
        }
        pool.run(&|tid| {
            for j in split(n, nt, tid, 1) {
                // SAFETY: thread tid owns rows split(n, nt, tid).
                unsafe { wr.write(j, |row| f(j, row)) };
            }
        })
        .map_err(rt)
    }

    /// Causal grouped-query attention of `n` new query rows (`q`, positions `pos..pos+n`) over the layer's cache,
    /// into `att`; (query, head) pairs split across threads.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        pool: &mut Pool,
        q: &[f32],
        kc: &[f32],
        vc: &[f32],
        n: usize,
        pos: usize,
        att: &mut Vec<f32>,
    ) -> Result<(), BackendError> {
        let hp = &self.w.hp;
        let (hd, nh) = (hp.head_dim, hp.n_head);
        let (kvd, rep) = (hp.n_head_kv * hd, hp.n_head / hp.n_head_kv);
        resize(att, n * nh * hd);
        let out = Shared(att.as_mut_ptr(), att.len());
        let scale = 1.0 / (hd as f32).sqrt();
        let nt = pool.threads();
        let ks = &self.ks;
        pool.run(&|tid| {
            let mut scores = vec![0f32; pos + n];
            // Interleaved units: causal rows grow with i, so contiguous pieces would load the last thread most.
            for unit in (tid..n * nh).step_by(nt) {
                let (i, h) = (unit / nh, unit % nh);
                let g = h / rep;
                let qv = &q[i * nh * hd + h * hd..][..hd];
                let p = &mut scores[..pos + i + 1];
                ks.scores(qv, &kc[g * hd..], kvd, scale, p);
                ks.softmax(p);
                // SAFETY: unit (i, h) owns this head's slice of row i.
                let o = unsafe { out.slice(i * nh * hd + h * hd, hd) };
                ks.weighted_sum(p, &vc[g * hd..], kvd, o);
            }
        })
        .map_err(rt)
    }

    /// Appends `tokens` to the session and returns the logits of the last one, or of every one when `all`.
    pub fn forward(&self, st: &mut State, tokens: &[u32], all: bool) -> Result<Vec<f32>, BackendError> {
        let w = &self.w;
        let hp = &w.hp;
        // The harness's checked session has refused empty input, ids outside the vocabulary and a full context.
        let n = tokens.len();
        let (e, hd) = (hp.n_embd, hp.head_dim);
        let kvd = hp.n_head_kv * hd;
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let pool = &mut *pool;

        resize(&mut st.x, n * e);
        for (i, &t) in tokens.iter().enumerate() {
            let row =
                quant::dequantize(w.embd.ty.ggml(), &w.embd.row(t as usize), e).map_err(|err| rt(err.to_string()))?;
            st.x[i * e..(i + 1) * e].copy_from_slice(&row);
        }
        let (cos, sin) = ops::rope_tables(st.pos, n, hd, hp.rope_base, hp.rope_scale);
        for (li, layer) in w.layers.iter().enumerate() {
            let x = &st.x;
            self.fill_acts(pool, &mut st.acts, n, e, &|j, row| {
                ops::rms_norm(&x[j * e..(j + 1) * e], &layer.attn_norm, hp.eps, row)
            })?;
            self.matmuls(
                pool,
                &st.acts,
                &mut [(&layer.wq, &mut st.q), (&layer.wk, &mut st.kn), (&layer.wv, &mut st.vn)],
            )?;
            ops::rope(&mut st.q, hp.n_head, hd, &cos, &sin);
            ops::rope(&mut st.kn, hp.n_head_kv, hd, &cos, &sin);
            st.k[li].truncate(st.pos * kvd);
            st.v[li].truncate(st.pos * kvd);
            st.k[li].extend_from_slice(&st.kn);
            st.v[li].extend_from_slice(&st.vn);
            self.attention(pool, &st.q, &st.k[li], &st.v[li], n, st.pos, &mut st.att)?;
            let att = &st.att;
            self.fill_acts(pool, &mut st.acts, n, e, &|j, row| row.copy_from_slice(&att[j * e..(j + 1) * e]))?;
            self.matmuls(pool, &st.acts, &mut [(&layer.wo, &mut st.o)])?;
            st.x.iter_mut().zip(&st.o).for_each(|(x, o)| *x += o);

            let x = &st.x;
            self.fill_acts(pool, &mut st.acts, n, e, &|j, row| {
                ops::rms_norm(&x[j * e..(j + 1) * e], &layer.ffn_norm, hp.eps, row)
            })?;
            self.matmuls(pool, &st.acts, &mut [(&layer.gate, &mut st.g), (&layer.up, &mut st.u)])?;
            let (g, u, ff) = (&st.g, &st.u, hp.n_ff);
            self.fill_acts(pool, &mut st.acts, n, ff, &|j, row| {
                ops::swiglu(row, &g[j * ff..(j + 1) * ff], &u[j * ff..(j + 1) * ff])
            })?;
            self.matmuls(pool, &st.acts, &mut [(&layer.down, &mut st.o)])?;
            st.x.iter_mut().zip(&st.o).for_each(|(x, o)| *x += o);
        }
        let first = if all { 0 } else { n - 1 };
        let rows = n - first;
        let mut h = vec![0f32; rows * e];
        ops::rms_norm(&st.x[first * e..], &w.output_norm, hp.eps, &mut h);
        st.acts.set(&self.ks, &h, rows, e, true);
        let mut logits = Vec::new();
        self.matmuls(pool, &st.acts, &mut [(w.output(), &mut logits)])?;
        st.pos += n;
        Ok(logits)
    }
}
