//! candle's own path for a GGUF llama: candle-transformers' quantized llama, timed on llama-bench's pp512 and tg128,
//! the reference `ci/candle-parity.sh` holds edgebench's candle backend against.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p edgebench-backend-candle --features parity --example candle_reference -- \
//!     MODEL.gguf [--reps N] [--warmup N]
//! ```
//!
//! Prints one JSON line: the thread count candle used, the medians and every repetition's t/s. pp512: 512 prompt
//! tokens in one forward call with an empty cache (t/s = 512 / its time). tg128: a 1-token prompt, then 128
//! single-token steps, each fed the previous step's greedy token (t/s = 128 / their total time), as edgebench's
//! `standard` suite times them. Prompt ids come from a fixed-seed generator over the vocabulary, as llama-bench's do.

use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn arg_value(args: &[String], flag: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).ok_or_else(|| format!("{flag} needs a whole number")),
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn argmax(logits: &Tensor) -> Result<u32, String> {
    let v: Vec<f32> = logits.flatten_all().and_then(|t| t.to_vec1()).map_err(|e| e.to_string())?;
    let best = v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).ok_or("empty logits")?;
    Ok(best.0 as u32)
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .ok_or("usage: candle_reference MODEL.gguf [--reps N] [--warmup N]")?;
    let reps = arg_value(&args, "--reps", 5)?;
    let warmup = arg_value(&args, "--warmup", 1)?;
    for a in args.iter().skip(1).filter(|a| a.starts_with("--")) {
        if a != "--reps" && a != "--warmup" {
            return Err(format!("unknown flag {a}"));
        }
    }
    let device = Device::Cpu;
    let mut file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| format!("{path}: {e}"))?;
    let vocab = match content.metadata.get("tokenizer.ggml.tokens") {
        Some(gguf_file::Value::Array(a)) => a.len(),
        _ => return Err(format!("{path}: no tokenizer.ggml.tokens")),
    };
    let load = Instant::now();
    let mut model = ModelWeights::from_gguf(content, &mut file, &device).map_err(|e| format!("{path}: {e}"))?;
    let load_s = load.elapsed().as_secs_f64();

    // A fixed-seed linear congruential generator: the same prompt every run, no extra dependency.
    let mut state: u64 = 0x5eed;
    let prompt: Vec<u32> = (0..512)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % vocab as u64) as u32
        })
        .collect();
    let e = |e: candle_core::Error| e.to_string();

    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for i in 0..warmup + reps {
        model.clear_kv_cache();
        let ids = Tensor::new(prompt.as_slice(), &device).and_then(|t| t.unsqueeze(0)).map_err(e)?;
        let t0 = Instant::now();
        let logits = model.forward(&ids, 0).map_err(e)?;
        argmax(&logits)?;
        let pp_s = t0.elapsed().as_secs_f64();

        model.clear_kv_cache();
        let first = Tensor::new(&prompt[..1], &device).and_then(|t| t.unsqueeze(0)).map_err(e)?;
        let mut next = argmax(&model.forward(&first, 0).map_err(e)?)?;
        let t0 = Instant::now();
        for step in 0..128 {
            let ids = Tensor::new(&[next], &device).and_then(|t| t.unsqueeze(0)).map_err(e)?;
            next = argmax(&model.forward(&ids, 1 + step).map_err(e)?)?;
        }
        let tg_s = t0.elapsed().as_secs_f64();
        if i >= warmup {
            pp.push(512.0 / pp_s);
            tg.push(128.0 / tg_s);
        }
    }
    let list = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
    println!(
        "{{\"tool\": \"candle-transformers 0.11.1 quantized_llama\", \"threads\": {}, \"load_s\": {load_s:.3}, \
         \"pp512_tps\": {:.3}, \"tg128_tps\": {:.3}, \"pp512_samples\": [{}], \"tg128_samples\": [{}]}}",
        candle_core::utils::get_num_threads(),
        median(&pp),
        median(&tg),
        list(&pp),
        list(&tg)
    );
    Ok(())
}
