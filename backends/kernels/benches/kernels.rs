//! Each kernel's speed on this CPU, best path against the scalar reference (and, for Q4_0/Q4_1/Q8_0, the
//! interleaved layout), single-threaded:
//! - `matvec/<type>/<path>`: one activation row against a matrix of ≥ 256 MiB (8× a 32 MiB last-level cache: at
//!   64 MiB, AMD's victim L3 kept part of the matrix between iterations), as in decode; throughput in bytes of
//!   weights read per second (GiB/s, comparable with the `memory_bandwidth` bench of edgebench-probes).
//! - `matmul/<type>/<path>`: 64 activation rows against a 256 × 4096 matrix (cache-resident), as in prefill;
//!   throughput in elements per second where one element is one floating-point operation (2 per multiply-add),
//!   so "Gelem/s" reads as GFLOP/s.
//! - `attention/<scores|wsum>/<rows>x<positions>/<f32|f16>/<path>`: the grouped attention kernels over one KV head's
//!   cache (keys in transposed tiles), for a prompt's unit (4 positions × 3 query heads = 12 rows over 256
//!   positions) and a decode step's (1 row over 256, and over 61: a last vector of positions that is partial);
//!   GFLOP/s as above.
//!
//! `cargo bench -p edgebench-kernels --bench kernels` (a filter such as `-- matvec/Q4_1` narrows it).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgebench_gguf::quant::quantize;
use edgebench_kernels::{
    matmul_rows, repack, ActQuant, Isa, KernelSet, KvSlice, Layout, OutMatrix, QuantActs, WeightMatrix, WeightType,
};

const COLS: usize = 4096;

fn weights(ty: WeightType, rows: usize) -> Vec<u8> {
    let n = rows * COLS;
    match ty {
        WeightType::Q4K | WeightType::Q5K | WeightType::Q6K => {
            let (bytes, scale_at): (usize, &[usize]) = match ty {
                WeightType::Q4K => (144, &[0, 2]),
                WeightType::Q5K => (176, &[0, 2]),
                _ => (210, &[208]),
            };
            let mut d: Vec<u8> =
                (0..n / 256 * bytes).map(|i| (i as u32).wrapping_mul(2654435761).rotate_right(13) as u8).collect();
            for b in 0..n / 256 {
                for &at in scale_at {
                    d[b * bytes + at..b * bytes + at + 2].copy_from_slice(&half::f16::from_f32(0.002).to_le_bytes());
                }
            }
            d
        }
        _ => {
            let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0).collect();
            quantize(ty.ggml(), &x).expect("quantize")
        }
    }
}

/// The scalar reference and every SIMD path this CPU has that runs `ty` with a kernel of its own, each also on the
/// interleaved layout where the path runs it.
fn paths(ty: WeightType) -> Vec<(String, KernelSet, Layout)> {
    let mut v = vec![("scalar".to_string(), KernelSet::scalar(), Layout::Plain)];
    for isa in Isa::ALL.into_iter().filter(|&i| i != Isa::Scalar) {
        let Ok(ks) = KernelSet::new(isa) else { continue };
        if isa.path_for(ty, Layout::Plain) == isa {
            v.push((isa.name().to_string(), ks, Layout::Plain));
        }
        if isa.interleaves() && repack::supported(ty) && isa.path_for(ty, Layout::Interleaved4) == isa {
            v.push((format!("{} interleaved", isa.name()), ks, Layout::Interleaved4));
        }
        if isa.interleaves16() && repack::supported16(ty) {
            v.push((format!("{} interleaved16", isa.name()), ks, Layout::Interleaved16));
        }
    }
    v
}

fn run(c: &mut Criterion, group: &str, rows: impl Fn(WeightType) -> usize, n: usize) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for &ty in WeightType::ALL {
        let rows = rows(ty);
        let plain = weights(ty, rows);
        let x: Vec<f32> = (0..n * COLS).map(|i| ((i * 31) % 997) as f32 / 500.0 - 1.0).collect();
        // As the native engine quantizes them: one scale per 256 values for K-quant weights, per 32 for the others.
        let mode = match ty {
            WeightType::Q4K | WeightType::Q5K | WeightType::Q6K => ActQuant::Super256,
            t if t.quantized() => ActQuant::Block32,
            _ => ActQuant::None,
        };
        let mut acts = QuantActs::new();
        let wr = acts.writer_with(&KernelSet::best(), n, COLS, mode);
        for j in 0..n {
            // SAFETY: one writer per row.
            unsafe { wr.write(j, |row| row.copy_from_slice(&x[j * COLS..(j + 1) * COLS])) };
        }
        let mut out = vec![0f32; n * rows];
        g.throughput(if n == 1 {
            Throughput::Bytes(plain.len() as u64)
        } else {
            Throughput::Elements((2 * rows * COLS * n) as u64)
        });
        for (name, ks, layout) in paths(ty) {
            let data = match layout {
                Layout::Plain => plain.clone(),
                Layout::Interleaved4 => repack::interleave(ty, rows, COLS, &plain).expect("interleave"),
                Layout::Interleaved16 => repack::interleave16(ty, rows, COLS, &plain).expect("interleave by 16"),
            };
            let mut w = WeightMatrix::new(ty, rows, COLS, &data).expect("shape");
            w.layout = layout;
            g.bench_function(BenchmarkId::new(ty.name(), name), |b| {
                b.iter(|| {
                    // SAFETY: one writer; `out` outlives the call.
                    unsafe { matmul_rows(&ks, &w, 0..rows, &acts, &OutMatrix::new(&mut out, rows)) };
                    black_box(out[0])
                })
            });
        }
    }
    g.finish();
}

fn attention(c: &mut Criterion) {
    const HD: usize = 64;
    const POSITIONS: usize = 256;
    let mut g = c.benchmark_group("attention");
    let k32: Vec<f32> = (0..2 * POSITIONS * HD).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let k16: Vec<half::f16> = k32.iter().map(|&x| half::f16::from_f32(x)).collect();
    let best = KernelSet::best();
    // A prompt's tile (the query heads of a group times a block of positions), and decode's single head, over a
    // cache whose last vector of positions is partial.
    for (rows, positions) in [(12usize, POSITIONS), (1, POSITIONS), (1, 61)] {
        let q: Vec<f32> = (0..rows * HD).map(|i| (i % 13) as f32 / 13.0).collect();
        let p: Vec<f32> = (0..rows * positions).map(|i| (i % 7) as f32 / 700.0).collect();
        g.throughput(Throughput::Elements((2 * rows * positions * HD) as u64));
        for (ty, keys) in [("f32", KvSlice::F32(&k32)), ("f16", KvSlice::F16(&k16))] {
            for (path, ks) in [(best.isa().name(), best), ("scalar", KernelSet::scalar())] {
                let id = format!("{rows}x{positions}/{ty}/{path}");
                let mut out = vec![0f32; rows * positions];
                g.bench_function(BenchmarkId::new("scores", &id), |b| {
                    b.iter(|| ks.scores_t(black_box(&q), HD, keys, positions, 0.125, &mut out))
                });
                let mut out = vec![0f32; rows * HD];
                g.bench_function(BenchmarkId::new("wsum", &id), |b| {
                    b.iter(|| ks.weighted_sum_rows(black_box(&p), positions, keys, HD, &mut out))
                });
            }
        }
    }
    g.finish();
}

fn kernels(c: &mut Criterion) {
    run(c, "matvec", |ty| (256 << 20) / ty.row_bytes(COLS) / 16 * 16 + 16, 1);
    run(c, "matmul", |_| 256, 64);
    attention(c);
}

criterion_group!(benches, kernels);
criterion_main!(benches);
