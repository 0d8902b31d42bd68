//! The forward pass of every architecture the description ([`edgebench_gguf::arch`]) names: a session's KV cache
//! and scratch buffers, batched prefill (matrix-matrix) and decode (matrix-vector) through the same code, every
//! matrix product and the attention split across the model's pool.

use std::sync::Mutex;

use edgebench_core::BackendError;
use edgebench_gguf::quant;
use edgebench_kernels::acts::QK_K;
use edgebench_kernels::{matmul_rows, ActQuant, KernelSet, KvSlice, OutMatrix, QuantActs, WeightMatrix, WeightType};

use crate::kv::{GroupMut, KvCache, KvType};
use crate::model::{Weight, Weights};
use crate::ops;
use crate::pool::{split, Pool};
use crate::profile::{guard, timed, Stage};

/// Weight rows per unit of work handed to a thread, at least (the 4-row kernels' tile height; a 16-row layout's
/// group is larger).
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

/// A decode step's view of one KV head of the cache: stored and read by the one thread whose query heads it serves,
/// or stored before the attention's job and read by several.
enum Part<'a> {
    Owned(Mutex<GroupMut<'a>>),
    Shared((KvSlice<'a>, KvSlice<'a>)),
}

/// Query rows (positions) per attention unit in a prompt: with the query heads of a GQA group, one unit's keys and
/// values are loaded once for this many rows times the group's heads.
const QUERY_BLOCK: usize = 4;

/// A session's state: the KV cache and reusable buffers.
pub struct State {
    /// Positions consumed.
    pub pos: usize,
    kv: KvCache,
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
    /// An empty cache of `ty` for `layers` blocks.
    pub fn new(layers: usize, ty: KvType) -> Self {
        Self {
            pos: 0,
            kv: KvCache::new(layers, ty),
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

/// How activations read by the matrices `by` are quantized: one scale per 256 values when every one of them is a
/// K-quant (as llama.cpp's Q8_K, so their kernels apply sub-block scales in integers), else per 32.
fn act_quant(by: &[&Weight], k: usize) -> ActQuant {
    let k_quant = |w: &&Weight| matches!(w.ty, WeightType::Q4K | WeightType::Q5K | WeightType::Q6K);
    if k.is_multiple_of(QK_K) && by.iter().all(k_quant) {
        ActQuant::Super256
    } else {
        ActQuant::Block32
    }
}

fn resize(v: &mut Vec<f32>, n: usize) {
    v.clear();
    v.resize(n, 0.0);
}

/// `x += o`, `o` first normed by `post` (a post-norm's weights) when the block has one.
fn add_residual(x: &mut [f32], o: &mut [f32], post: Option<&[f32]>, eps: f32) {
    if let Some(w) = post {
        ops::rms_norm_in_place(o, w, eps);
    }
    x.iter_mut().zip(o.iter()).for_each(|(x, o)| *x += o);
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
        // Threads split the concatenated rows, in units of the largest row group, unless a matrix would then be cut
        // inside a group: then each matrix is split on its own.
        let unit = mats.iter().map(|(m, _)| m.layout.group_rows()).max().unwrap_or(1).max(ROW_ALIGN);
        let whole = mats.iter().all(|(m, _)| m.rows.is_multiple_of(unit));
        pool.run(&|tid| {
            let mine = split(total, nt, tid, unit);
            let mut base = 0;
            for (m, out) in &mats {
                let (lo, hi) = if whole {
                    (mine.start.max(base) - base, mine.end.min(base + m.rows).saturating_sub(base))
                } else {
                    let r = split(m.rows, nt, tid, m.layout.group_rows().max(ROW_ALIGN));
                    (r.start, r.end)
                };
                if lo < hi {
                    // SAFETY: each thread owns a disjoint row range of each output.
                    unsafe { matmul_rows(ks, m, lo..hi, acts, out) };
                }
                base += m.rows;
            }
        })
        .map_err(rt)
    }

    /// `acts` = `f(j, row)` for each of `n` rows of `k` values, rows split across threads, each row quantized by
    /// the thread that wrote it as the matrices that read them (`by`) want it ([`act_quant`]).
    fn fill_acts(
        &self,
        pool: &mut Pool,
        acts: &mut QuantActs,
        by: &[&Weight],
        n: usize,
        k: usize,
        f: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<(), BackendError> {
        let wr = acts.writer_with(&self.ks, n, k, act_quant(by, k));
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

    /// Stores `n` new positions' keys and values (`kn`, `vn`) in layer `li`'s cache, then computes the causal
    /// grouped-query attention of their query rows (`q`, positions `pos..pos+n`) over it into `att`; a sliding
    /// layer's query at `p` sees keys from `p − window + 1` only. A prompt's unit is a block of `QUERY_BLOCK`
    /// positions times the query heads of one KV head, so each key and value is loaded once for all of them; a single
    /// position's unit is one head. A prompt's units are interleaved across threads (causal rows grow with the
    /// position), after the store. Fewer than `QUERY_BLOCK` positions (decode) give each thread a contiguous range of
    /// query heads instead; a KV head serving only one thread's heads is stored by that thread inside the job, so the
    /// cache lines a step writes stay in the core that reads them (the others are stored first). Every unit computes
    /// the same way on any thread, so the logits do not depend on the thread count.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        pool: &mut Pool,
        (q, kn, vn): (&[f32], &[f32], &[f32]),
        kv: &mut KvCache,
        li: usize,
        n: usize,
        pos: usize,
        att: &mut Vec<f32>,
    ) -> Result<(), BackendError> {
        let hp = &self.w.hp;
        let (hd, nh, nkv) = (hp.head_dim, hp.n_head, hp.n_head_kv);
        let rep = nh / nkv;
        resize(att, n * nh * hd);
        let out = Shared(att.as_mut_ptr(), att.len());
        let (scale, window, ks, nt) = (hp.attn_scale, hp.window(li), &self.ks, pool.threads());
        // One unit: (first position, last position + 1, first head, last head + 1), heads of one KV head's group.
        let attend = |(i0, i1, h0, h1): (usize, usize, usize, usize),
                      keys: KvSlice<'_>,
                      values: KvSlice<'_>,
                      (qs, scores, outs): &mut (Vec<f32>, Vec<f32>, Vec<f32>)| {
            let rows = (i1 - i0) * (h1 - h0);
            let seen_all = pos + i1;
            qs.clear();
            for i in i0..i1 {
                qs.extend_from_slice(&q[i * nh * hd + h0 * hd..i * nh * hd + h1 * hd]);
            }
            // Every element is written by the kernels below (scores, then probabilities or zeros; sums).
            scores.resize(rows * seen_all, 0.0);
            ks.scores_t(qs, hd, keys, seen_all, scale, scores);
            for (r, row) in scores.chunks_exact_mut(seen_all).enumerate() {
                let seen = pos + i0 + r / (h1 - h0) + 1;
                let from = window.map_or(0, |w| seen.saturating_sub(w));
                ks.softmax(&mut row[from..seen]);
                row[..from].fill(0.0);
                row[seen..].fill(0.0);
            }
            outs.resize(rows * hd, 0.0);
            ks.weighted_sum_rows(scores, seen_all, values, hd, outs);
            for (r, o) in outs.chunks_exact(hd).enumerate() {
                let (i, h) = (i0 + r / (h1 - h0), h0 + r % (h1 - h0));
                // SAFETY: unit (positions i0..i1, heads h0..h1) owns these heads' slices of these rows.
                unsafe { out.slice(i * nh * hd + h * hd, hd) }.copy_from_slice(o);
            }
        };
        if n < QUERY_BLOCK && nt > 1 {
            // Each thread takes a contiguous range of query heads; a KV head whose query heads all fall in one
            // thread's range is stored and read by that thread alone, the others are stored first and shared.
            let heads = |tid: usize| split(nh, nt, tid, 1);
            let owner =
                |g: usize| (0..nt).find(|&t| heads(t).contains(&(g * rep)) && heads(t).contains(&((g + 1) * rep - 1)));
            let parts: Vec<Part<'_>> = kv
                .groups_mut(li, nkv, hd)
                .into_iter()
                .enumerate()
                .map(|(g, mut group)| match owner(g) {
                    Some(_) => Part::Owned(Mutex::new(group)),
                    None => {
                        timed!(Stage::KvStore, group.store(g, kn, vn, pos, nkv));
                        Part::Shared(group.into_views())
                    }
                })
                .collect();
            return pool
                .run(&|tid| {
                    let mut scratch = Default::default();
                    let mine = heads(tid);
                    let first = mine.start / rep;
                    for (g, part) in parts.iter().enumerate().take(mine.end.div_ceil(rep)).skip(first) {
                        let in_range = |h: &usize| mine.contains(h);
                        match part {
                            Part::Owned(group) if owner(g) == Some(tid) => {
                                let mut group = group.lock().unwrap_or_else(|p| p.into_inner());
                                group.store(g, kn, vn, pos, nkv);
                                for h in (g * rep..(g + 1) * rep).filter(in_range) {
                                    for i in 0..n {
                                        attend((i, i + 1, h, h + 1), group.keys(), group.values(), &mut scratch);
                                    }
                                }
                            }
                            Part::Shared((keys, values)) => {
                                for h in (g * rep..(g + 1) * rep).filter(in_range) {
                                    for i in 0..n {
                                        attend((i, i + 1, h, h + 1), *keys, *values, &mut scratch);
                                    }
                                }
                            }
                            // Another thread's KV head: none of its query heads is in this range.
                            Part::Owned(_) => debug_assert!((g * rep..(g + 1) * rep).all(|h| !in_range(&h))),
                        }
                    }
                })
                .map_err(rt);
        }
        timed!(Stage::KvStore, kv.store(li, kn, vn, pos, nkv, hd));
        let units: Vec<(usize, usize, usize, usize)> = if n >= QUERY_BLOCK {
            (0..n)
                .step_by(QUERY_BLOCK)
                .flat_map(|i| (0..nkv).map(move |g| (i, (i + QUERY_BLOCK).min(n), g * rep, (g + 1) * rep)))
                .collect()
        } else {
            (0..n).flat_map(|i| (0..nh).map(move |h| (i, i + 1, h, h + 1))).collect()
        };
        let views: Vec<(KvSlice<'_>, KvSlice<'_>)> =
            kv.groups_mut(li, nkv, hd).into_iter().map(GroupMut::into_views).collect();
        pool.run(&|tid| {
            let mut scratch = Default::default();
            for &unit in units.iter().skip(tid).step_by(nt) {
                let (keys, values) = views[unit.2 / rep];
                attend(unit, keys, values, &mut scratch);
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
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let pool = &mut *pool;

        let embed = guard(Stage::Embed);
        resize(&mut st.x, n * e);
        for (i, &t) in tokens.iter().enumerate() {
            let mut row =
                quant::dequantize(w.embd.ty.ggml(), &w.embd.row(t as usize), e).map_err(|err| rt(err.to_string()))?;
            if let Some(s) = hp.embd_scale {
                row.iter_mut().for_each(|v| *v *= s);
            }
            st.x[i * e..(i + 1) * e].copy_from_slice(&row);
        }
        let tables = |li: usize| {
            let (base, scale) = hp.rope(li);
            ops::rope_tables(st.pos, n, hd, base, scale, w.rope_freqs.as_deref())
        };
        // The tables of full-attention layers, and of sliding ones (their own rope base) when there are any.
        let first_of = |slides: bool| (0..hp.n_layer).find(|&li| hp.slides(li) == slides);
        let full = tables(first_of(false).unwrap_or(0));
        let local = first_of(true).map(tables);
        drop(embed);
        let (qd, act) = (hp.q_dim(), hp.activation);
        st.kv.reserve(st.pos + n, st.pos, hp.n_head_kv, hd);
        for (li, layer) in w.layers.iter().enumerate() {
            let x = &st.x;
            timed!(
                Stage::AttnNorm,
                self.fill_acts(pool, &mut st.acts, &[&layer.wq, &layer.wk, &layer.wv], n, e, &|j, row| {
                    ops::rms_norm(&x[j * e..(j + 1) * e], &layer.attn_norm, hp.eps, row)
                })
            )?;
            let mut qkv = [(&layer.wq, &mut st.q), (&layer.wk, &mut st.kn), (&layer.wv, &mut st.vn)];
            timed!(Stage::Qkv, self.matmuls(pool, &st.acts, &mut qkv))?;
            let rope = guard(Stage::Rope);
            if let Some([bq, bk, bv]) = &layer.bias {
                for (out, b) in [(&mut st.q, bq), (&mut st.kn, bk), (&mut st.vn, bv)] {
                    out.chunks_exact_mut(b.len()).for_each(|r| r.iter_mut().zip(b).for_each(|(v, c)| *v += c));
                }
            }
            if let Some([nq, nk]) = &layer.qk_norm {
                ops::rms_norm_in_place(&mut st.q, nq, hp.eps);
                ops::rms_norm_in_place(&mut st.kn, nk, hp.eps);
            }
            let (cos, sin) = match &local {
                Some(l) if hp.slides(li) => (&l.0, &l.1),
                _ => (&full.0, &full.1),
            };
            ops::rope(&mut st.q, hp.n_head, hd, cos, sin, hp.rope_style);
            ops::rope(&mut st.kn, hp.n_head_kv, hd, cos, sin, hp.rope_style);
            drop(rope);
            let new = (&st.q[..], &st.kn[..], &st.vn[..]);
            timed!(Stage::Attention, self.attention(pool, new, &mut st.kv, li, n, st.pos, &mut st.att))?;
            let att = &st.att;
            timed!(
                Stage::AttnOutActs,
                self.fill_acts(pool, &mut st.acts, &[&layer.wo], n, qd, &|j, row| {
                    row.copy_from_slice(&att[j * qd..(j + 1) * qd])
                })
            )?;
            timed!(Stage::Wo, self.matmuls(pool, &st.acts, &mut [(&layer.wo, &mut st.o)]))?;
            let post_attn = layer.post_norms.as_ref().map(|[p, _]| &p[..]);
            timed!(Stage::Residual, add_residual(&mut st.x, &mut st.o, post_attn, hp.eps));

            let x = &st.x;
            timed!(
                Stage::FfnNorm,
                self.fill_acts(pool, &mut st.acts, &[&layer.gate, &layer.up], n, e, &|j, row| {
                    ops::rms_norm(&x[j * e..(j + 1) * e], &layer.ffn_norm, hp.eps, row)
                })
            )?;
            let mut gate_up = [(&layer.gate, &mut st.g), (&layer.up, &mut st.u)];
            timed!(Stage::GateUp, self.matmuls(pool, &st.acts, &mut gate_up))?;
            let (g, u, ff, ks) = (&st.g, &st.u, hp.n_ff, &self.ks);
            timed!(
                Stage::Glu,
                self.fill_acts(pool, &mut st.acts, &[&layer.down], n, ff, &|j, row| {
                    let (g, u) = (&g[j * ff..(j + 1) * ff], &u[j * ff..(j + 1) * ff]);
                    ks.glu(act, row, g, u)
                })
            )?;
            timed!(Stage::Down, self.matmuls(pool, &st.acts, &mut [(&layer.down, &mut st.o)]))?;
            let post_ffn = layer.post_norms.as_ref().map(|[_, p]| &p[..]);
            timed!(Stage::Residual, add_residual(&mut st.x, &mut st.o, post_ffn, hp.eps));
        }
        let head = guard(Stage::Head);
        let first = if all { 0 } else { n - 1 };
        let rows = n - first;
        let mut h = vec![0f32; rows * e];
        ops::rms_norm(&st.x[first * e..], &w.output_norm, hp.eps, &mut h);
        let wr = st.acts.writer_with(&self.ks, rows, e, act_quant(&[w.output()], e));
        for j in 0..rows {
            // SAFETY: this thread writes every row, once.
            unsafe { wr.write(j, |row| row.copy_from_slice(&h[j * e..(j + 1) * e])) };
        }
        let mut logits = Vec::new();
        self.matmuls(pool, &st.acts, &mut [(w.output(), &mut logits)])?;
        if let Some(cap) = hp.logit_softcap {
            ops::softcap(&mut logits, cap);
        }
        drop(head);
        st.pos += n;
        Ok(logits)
    }
}
