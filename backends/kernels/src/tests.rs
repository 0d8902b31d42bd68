//! Property tests: every SIMD kernel against the scalar reference on random inputs, the scalar reference against an
//! f64 product of the GGUF reference decoders, and the SIMD activation quantizer against the scalar one.

use edgebench_core::tolerance::{KERNEL_Q8_ACTIVATIONS, KERNEL_SCALAR_VS_DEQUANTIZED, KERNEL_SIMD_VS_SCALAR};
use edgebench_gguf::quant::{dequantize, quantize};
use proptest::prelude::*;

use crate::acts::ActQuant;
use edgebench_gguf::arch::Activation;

use crate::{Isa, KernelSet, KvSlice, QuantActs, WeightType};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn f(&mut self) -> f32 {
        (self.next() % 2_000_001) as f32 / 1_000_000.0 - 1.0
    }
}

/// `rows` random rows of `cols` values of `ty`: real quantizations of random values where edgebench has a
/// quantizer, random bytes with finite scales for the K-quants.
fn weights(ty: WeightType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    match ty {
        WeightType::Q4K | WeightType::Q5K | WeightType::Q6K => {
            let (bytes, scales): (usize, &[usize]) = match ty {
                WeightType::Q4K => (144, &[0, 2]),
                WeightType::Q5K => (176, &[0, 2]),
                _ => (210, &[208]),
            };
            let n = rows * cols / 256;
            let mut data: Vec<u8> = (0..n * bytes).map(|_| rng.next() as u8).collect();
            for b in 0..n {
                for &at in scales {
                    let v = half::f16::from_f32(0.001 + rng.f().abs() * 0.01).to_le_bytes();
                    data[b * bytes + at..b * bytes + at + 2].copy_from_slice(&v);
                }
            }
            data
        }
        _ => {
            let scale = 0.1 + rng.f().abs();
            let x: Vec<f32> = (0..rows * cols).map(|i| if i % 97 < 3 { 0.0 } else { rng.f() * scale }).collect();
            quantize(ty.ggml(), &x).unwrap()
        }
    }
}

fn acts(ks: &KernelSet, n: usize, k: usize, rng: &mut Rng, quantized: bool) -> QuantActs {
    acts_with(ks, n, k, rng, if quantized { ActQuant::Block32 } else { ActQuant::None })
}

fn acts_with(ks: &KernelSet, n: usize, k: usize, rng: &mut Rng, mode: ActQuant) -> QuantActs {
    let x: Vec<f32> = (0..n * k).map(|i| rng.f() * (1.0 + (i / 32 % 5) as f32 * 3.0)).collect();
    let mut a = QuantActs::new();
    let w = a.writer_with(ks, n, k, mode);
    for j in 0..n {
        // SAFETY: one thread writes every row once.
        unsafe { w.write(j, |row| row.copy_from_slice(&x[j * k..(j + 1) * k])) };
    }
    a
}

/// The activation quantizations a weight type's kernels take.
fn act_modes(ty: WeightType) -> &'static [ActQuant] {
    match ty {
        WeightType::F32 | WeightType::F16 => &[ActQuant::None],
        WeightType::Q4K | WeightType::Q5K | WeightType::Q6K => &[ActQuant::Block32, ActQuant::Super256],
        _ => &[ActQuant::Block32],
    }
}

/// Σ |w_i · x_i| over the dequantized weights and the (dequantized, for block types) activations, in f64, and the
/// f64 dot product itself.
fn f64_dot(ty: WeightType, w: &[u8], a: &crate::ActRow<'_>, quantized_acts: bool) -> (f64, f64) {
    let wf = dequantize(ty.ggml(), w, a.x.len()).unwrap();
    let xs: Vec<f64> = if quantized_acts {
        (0..a.x.len()).map(|i| a.ds[2 * (i / 32)] as f64 * a.qs[i] as f64).collect()
    } else {
        a.x.iter().map(|&v| v as f64).collect()
    };
    let dot = wf.iter().zip(&xs).map(|(&w, &x)| w as f64 * x).sum();
    let abs = wf.iter().zip(&xs).map(|(&w, &x)| (w as f64 * x).abs()).sum();
    (dot, abs)
}

/// Every SIMD path this CPU has (the scalar reference excluded).
fn simd_paths() -> Vec<KernelSet> {
    Isa::ALL.into_iter().filter(|&i| i != Isa::Scalar).filter_map(|i| KernelSet::new(i).ok()).collect()
}

/// Each SIMD path is property-tested where the CPU has it; the others are named here as skipped, with the reason.
#[test]
fn every_simd_path_is_tested_or_says_why_not() {
    for isa in Isa::ALL.into_iter().filter(|&i| i != Isa::Scalar) {
        match KernelSet::new(isa) {
            Ok(ks) => {
                assert_eq!(ks.isa(), isa);
                eprintln!("kernel path {isa}: property-tested against the scalar reference");
            }
            Err(why) => {
                assert!(!isa.available() && why.contains(isa.name()), "{why}");
                eprintln!("kernel path {isa}: skipped: {why}");
            }
        }
    }
    let best = KernelSet::best().isa();
    assert_eq!(Some(best), Isa::ALL.into_iter().find(|i| i.available()), "best() is the first path the CPU has");
}

fn k_for(ty: WeightType, blocks: usize) -> usize {
    // Float types get a tail that is not a multiple of 8 to exercise the SIMD remainder.
    match ty {
        WeightType::F32 | WeightType::F16 => blocks * 32 + 5,
        _ => blocks * ty.block_len(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn simd_kernels_match_the_scalar_reference(seed in any::<u64>(), n in 1usize..=4, blocks in 1usize..=5) {
        for best in simd_paths() {
            let mut rng = Rng(seed);
            for &ty in WeightType::ALL {
                for &mode in act_modes(ty) {
                    let k = k_for(ty, blocks);
                    let w = weights(ty, 1, k, &mut rng);
                    let a = acts_with(&best, n, k, &mut rng, mode);
                    let rows: Vec<_> = (0..n).map(|j| a.row(j)).collect();
                    let (mut simd, mut reference) = (vec![0f32; n], vec![0f32; n]);
                    best.dot_tile(ty, &w, &rows, &mut simd);
                    KernelSet::scalar().dot_tile(ty, &w, &rows, &mut reference);
                    for j in 0..n {
                        let (_, abs) = f64_dot(ty, &w, &rows[j], ty.quantized());
                        KERNEL_SIMD_VS_SCALAR
                            .check_scaled(&simd[j..=j], &reference[j..=j], abs as f32)
                            .map_err(|e| TestCaseError::fail(format!("{} {} {mode:?}: {e}", ty.name(), best.isa())))?;
                    }
                }
            }
        }
    }

    #[test]
    fn scalar_reference_equals_the_dequantized_product(seed in any::<u64>(), blocks in 1usize..=3) {
        let ks = KernelSet::scalar();
        let mut rng = Rng(seed);
        for &ty in WeightType::ALL {
            let k = k_for(ty, blocks);
            let w = weights(ty, 1, k, &mut rng);
            let a = acts(&ks, 1, k, &mut rng, ty.quantized());
            let mut got = [0f32];
            ks.dot_tile(ty, &w, &[a.row(0)], &mut got);
            let (want, abs) = f64_dot(ty, &w, &a.row(0), ty.quantized());
            KERNEL_SCALAR_VS_DEQUANTIZED
                .check_scaled(&got, &[want as f32], abs as f32)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", ty.name())))?;
            if ty.quantized() {
                // And the 8-bit activations stay close to the f32 ones.
                let (exact, abs) = f64_dot(ty, &w, &a.row(0), false);
                KERNEL_Q8_ACTIVATIONS
                    .check_scaled(&got, &[exact as f32], abs as f32)
                    .map_err(|e| TestCaseError::fail(format!("{}: {e}", ty.name())))?;
            }
        }
    }

    #[test]
    fn simd_activation_quantizer_is_bit_identical(seed in any::<u64>(), blocks in 1usize..=17) {
        let mut rng = Rng(seed);
        let mut x: Vec<f32> = (0..blocks * 32).map(|_| rng.f() * 10.0).collect();
        // Exact ties (x / d = k + 0.5), a zero block and extremes.
        x[0] = 127.0;
        x[1] = 0.5;
        x[2] = -2.5;
        if blocks > 1 {
            x[32..64].fill(0.0);
        }
        for best in simd_paths() {
            let (mut a, mut b) = (QuantActs::new(), QuantActs::new());
            a.set(&best, &x, 1, x.len(), true);
            b.set(&KernelSet::scalar(), &x, 1, x.len(), true);
            let (ra, rb) = (a.row(0), b.row(0));
            prop_assert_eq!(ra.qs, rb.qs);
            prop_assert_eq!(ra.ds, rb.ds);
            prop_assert!(ra.qs.iter().all(|&q| q != i8::MIN));
        }
        // One scale per 256 values: the same on every path, shared by the run's eight blocks, the run's largest
        // magnitude at ±127.
        let runs = blocks / 8;
        if runs > 0 {
            let x = &x[..runs * 256];
            let fill = |ks: &KernelSet, acts: &mut QuantActs| {
                let w = acts.writer_with(ks, 1, x.len(), ActQuant::Super256);
                // SAFETY: one thread writes the one row.
                unsafe { w.write(0, |row| row.copy_from_slice(x)) };
            };
            let mut b = QuantActs::new();
            fill(&KernelSet::scalar(), &mut b);
            let rb = b.row(0);
            prop_assert!(rb.super256);
            for r in 0..runs {
                let d = rb.ds[16 * r];
                prop_assert!((0..8).all(|i| rb.ds[16 * r + 2 * i] == d));
                prop_assert_eq!(rb.qs[256 * r..256 * (r + 1)].iter().map(|q| q.unsigned_abs()).max(), Some(127));
            }
            for best in simd_paths() {
                let mut a = QuantActs::new();
                fill(&best, &mut a);
                let ra = a.row(0);
                prop_assert_eq!(ra.qs, rb.qs);
                prop_assert_eq!(ra.ds, rb.ds);
            }
        }
    }
}

proptest! {
    /// SwiGLU and GeGLU over gates spanning −100..100 (saturated lanes included) and ragged lengths.
    #[test]
    fn simd_gated_activations_match_the_scalar_reference(seed in any::<u64>(), n in 0usize..70) {
        for best in simd_paths() {
            let mut rng = Rng(seed);
            let gate: Vec<f32> = (0..n).map(|i| rng.f() * if i % 5 == 0 { 100.0 } else { 6.0 }).collect();
            let up: Vec<f32> = (0..n).map(|_| rng.f() * 3.0).collect();
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            best.glu(Activation::Silu, &mut a, &gate, &up);
            crate::scalar::swiglu(&mut b, &gate, &up);
            KERNEL_SIMD_VS_SCALAR.check(&a, &b).map_err(TestCaseError::fail)?;
            best.glu(Activation::GeluTanh, &mut a, &gate, &up);
            crate::scalar::geglu(&mut b, &gate, &up);
            KERNEL_SIMD_VS_SCALAR.check(&a, &b).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn simd_attention_kernels_match_the_scalar_reference(seed in any::<u64>(), hd8 in 1usize..=10, t in 0usize..40) {
        for best in simd_paths() {
        let mut rng = Rng(seed);
        let (hd, stride) = (hd8 * 8, hd8 * 8 * 3 + 5);
        let q: Vec<f32> = (0..hd).map(|_| rng.f()).collect();
        let cache: Vec<f32> = (0..t * stride + hd).map(|_| rng.f() * 2.0).collect();
        let (mut a, mut b) = (vec![0f32; t], vec![0f32; t]);
        best.scores(&q, &cache[3..], stride, 0.125, &mut a);
        crate::scalar::scores(&q, &cache[3..], stride, 0.125, &mut b);
        let abs: f32 = 0.125 * 2.0 * hd as f32;
        KERNEL_SIMD_VS_SCALAR.check_scaled(&a, &b, abs).map_err(TestCaseError::fail)?;
        let p: Vec<f32> = (0..t).map(|_| rng.f().abs()).collect();
        let (mut x, mut y) = (vec![1f32; hd], vec![2f32; hd]);
        best.weighted_sum(&p, &cache[3..], stride, &mut x);
        crate::scalar::weighted_sum(&p, &cache[3..], stride, &mut y);
        let abs: f32 = p.iter().sum::<f32>() * 2.0;
        KERNEL_SIMD_VS_SCALAR.check_scaled(&x, &y, abs).map_err(TestCaseError::fail)?;
        // Softmax over scores spanning −90..+10 (underflowing lanes included).
        let mut s1: Vec<f32> = (0..t).map(|i| rng.f() * 50.0 - 40.0 + if i % 7 == 0 { -50.0 } else { 0.0 }).collect();
        let mut s2 = s1.clone();
        best.softmax(&mut s1);
        crate::scalar::softmax(&mut s2);
        KERNEL_SIMD_VS_SCALAR.check(&s1, &s2).map_err(TestCaseError::fail)?;
        prop_assert!(t == 0 || (s1.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

proptest! {
    /// The grouped kernels over a tiled, f32 or f16 cache against their scalar reference: 1 to 13 query rows
    /// (register tiles of 8, 4, 2, 1, several vectors wide), positions filling 0 to 3 key tiles with and without a
    /// partial last vector, a cache with room for more tiles than used.
    #[test]
    fn simd_grouped_attention_kernels_match_the_scalar_reference(
        seed in any::<u64>(), rows in 1usize..=13, hd8 in 1usize..=10, n in 0usize..97, extra in 0usize..2,
    ) {
        for best in simd_paths() {
            let mut rng = Rng(seed);
            let hd = hd8 * 8;
            let key_len = crate::attention::key_len(n, hd) + extra * crate::attention::KEY_TILE * hd;
            let q: Vec<f32> = (0..rows * hd).map(|_| rng.f()).collect();
            let k32: Vec<f32> = (0..key_len).map(|_| rng.f() * 2.0).collect();
            let v32: Vec<f32> = (0..n * hd).map(|_| rng.f() * 2.0).collect();
            let p: Vec<f32> = (0..rows * n).map(|_| rng.f().abs()).collect();
            let (k16, v16): (Vec<half::f16>, Vec<half::f16>) = (
                k32.iter().map(|&x| half::f16::from_f32(x)).collect(),
                v32.iter().map(|&x| half::f16::from_f32(x)).collect(),
            );
            for (keys, vals) in [(KvSlice::F32(&k32), KvSlice::F32(&v32)), (KvSlice::F16(&k16), KvSlice::F16(&v16))] {
                let (mut a, mut b) = (vec![9f32; rows * n], vec![7f32; rows * n]);
                best.scores_t(&q, hd, keys, n, 0.125, &mut a);
                crate::attention::scores_t(&q, hd, keys, n, 0.125, &mut b);
                KERNEL_SIMD_VS_SCALAR.check_scaled(&a, &b, 0.125 * 2.0 * hd as f32).map_err(TestCaseError::fail)?;
                let (mut x, mut y) = (vec![1f32; rows * hd], vec![2f32; rows * hd]);
                best.weighted_sum_rows(&p, n, vals, hd, &mut x);
                crate::attention::weighted_sum_rows(&p, n, vals, hd, &mut y);
                KERNEL_SIMD_VS_SCALAR.check_scaled(&x, &y, 2.0 * n as f32).map_err(TestCaseError::fail)?;
            }
        }
    }
}

/// One interleaved product against the scalar reference on the file layout: three groups of `layout`'s rows of
/// `ty` (Q8_0 with −128 bytes planted, which the file format allows and a quantizer never writes: |q| does not fit in
/// i8), `n` activation rows of `k` values, the row range skipping the first group (whose outputs must stay untouched).
fn interleaved_case(
    best: &KernelSet,
    layout: crate::Layout,
    ty: WeightType,
    n: usize,
    (k, mode): (usize, ActQuant),
    rng: &mut Rng,
) -> Result<(), TestCaseError> {
    let g = layout.group_rows();
    let rows = 3 * g;
    let mut plain = weights(ty, rows, k, rng);
    if ty == WeightType::Q8_0 {
        let (rb, last) = (ty.row_bytes(k), plain.len() - 1);
        plain[(g + 1) * rb + 2 + 7] = 0x80;
        plain[last] = 0x80;
    }
    let x = match layout {
        crate::Layout::Interleaved16 => crate::repack::interleave16(ty, rows, k, &plain),
        _ => crate::repack::interleave(ty, rows, k, &plain),
    };
    let a = acts_with(best, n, k, rng, mode);
    let (mut got, mut want) = (vec![0f32; n * rows], vec![0f32; n * rows]);
    let x = x.unwrap();
    let mut wx = crate::WeightMatrix::new(ty, rows, k, &x).unwrap();
    wx.layout = layout;
    prop_assert_eq!(best.isa().path_for(ty, layout), best.isa());
    let wp = crate::WeightMatrix::new(ty, rows, k, &plain).unwrap();
    // SAFETY: one writer per buffer, buffers outlive the calls.
    unsafe {
        crate::matmul_rows(best, &wx, g..rows, &a, &crate::OutMatrix::new(&mut got, rows));
        crate::matmul_rows(&KernelSet::scalar(), &wp, g..rows, &a, &crate::OutMatrix::new(&mut want, rows));
    }
    for j in 0..n {
        for r in 0..rows {
            let (_, abs) = f64_dot(ty, wp.row(r), &a.row(j), true);
            let (got, want) = (got[j * rows + r], want[j * rows + r]);
            if r < g {
                prop_assert_eq!((got, want), (0.0, 0.0), "rows outside the range stay untouched");
            }
            KERNEL_SIMD_VS_SCALAR.check_scaled(&[got], &[want], abs as f32).map_err(|e| {
                TestCaseError::fail(format!("{} {layout:?} {} {mode:?} row {r} act {j}: {e}", ty.name(), best.isa()))
            })?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The 4-row interleaved products (AVX2, AVX-VNNI and AVX-512 paths) and the 16-row ones (AVX-512 VNNI: Q4_0,
    /// Q4_1, Q8_0, and Q4_K, Q5_K and Q6_K against both activation quantizations; the paths a CPU lacks are named as skipped
    /// by `every_simd_path_is_tested_or_says_why_not`) equal the scalar reference on the file layout, for 1 to 9
    /// activation rows (full tiles of four and single rows) and a row range that skips the first group.
    #[test]
    fn interleaved_kernels_match_the_scalar_reference(seed in any::<u64>(), n in 1usize..=9, blocks in 1usize..=4) {
        let k = (blocks * 32, ActQuant::Block32);
        for best in simd_paths().into_iter().filter(|ks| ks.isa().interleaves()) {
            let mut rng = Rng(seed);
            for ty in [WeightType::Q4_0, WeightType::Q4_1, WeightType::Q5_0, WeightType::Q5_1, WeightType::Q8_0] {
                interleaved_case(&best, crate::Layout::Interleaved4, ty, n, k, &mut rng)?;
                if best.isa().interleaves16() && crate::repack::supported16(ty) {
                    interleaved_case(&best, crate::Layout::Interleaved16, ty, n, k, &mut rng)?;
                }
            }
            if best.isa().interleaves16() {
                // Q4_K's, Q5_K's and Q6_K's 16-row layouts, against activations with a scale per 32 and per 256 (`super256`).
                for mode in [ActQuant::Block32, ActQuant::Super256] {
                    let width = (blocks.min(2) * 256, mode);
                    for ty in [WeightType::Q4K, WeightType::Q5K, WeightType::Q6K] {
                        interleaved_case(&best, crate::Layout::Interleaved16, ty, n, width, &mut rng)?;
                    }
                }
            }
        }
    }
}

#[test]
fn ties_round_to_even() {
    let mut x = [0f32; 32];
    x[0] = 127.0; // d = 1
    x[1] = 2.5;
    x[2] = -3.5;
    let mut q = [0i8; 32];
    let (d, s) = crate::scalar::quantize_block(&x, &mut q);
    assert_eq!((d, q[0], q[1], q[2]), (1.0, 127, 2, -4));
    assert_eq!(s, (127 + 2 - 4) as f32);
}

#[test]
fn bad_shapes_are_refused() {
    let ks = KernelSet::best();
    assert!(crate::WeightMatrix::new(WeightType::Q4_1, 2, 48, &[0; 40]).unwrap_err().contains("48 columns"));
    assert!(crate::WeightMatrix::new(WeightType::Q4_1, 2, 32, &[0; 39]).unwrap_err().contains("39 bytes"));
    let a = acts(&ks, 1, 64, &mut Rng(1), true);
    let r = std::panic::catch_unwind(|| {
        let mut out = [0f32];
        ks.dot_tile(WeightType::Q4_1, &[0; 20], &[a.row(0)], &mut out);
    });
    assert!(r.is_err(), "a 32-value weight row against 64 activations must panic, not read past the end");
}
