//! tract's own API driving an ONNX export the way tract's documentation runs a stateful model: load, optimize, plan
//! once (with the symbol facts tract's LLM exports declare), one spawned state, `state.run` per call with the previous call's `present` outputs as the next `past`
//! inputs. No edgebench code runs between the calls; `ci/tract-parity.sh` holds edgebench's tract backend against it.
//!
//! ```text
//! cargo run --release -p edgebench-backend-tract --example tract_reference -- MODEL.onnx [--threads N] [--reps N]
//! ```
//!
//! Prints one JSON line with the medians and every repetition's t/s, timed as edgebench's `standard` suite does:
//! pp512 = 512 prompt tokens in one call with an empty cache (last-position logits); tg128 = a 1-token prompt, then
//! 128 single-token calls, each fed the previous call's greedy token.

use std::time::Instant;

use tract_onnx::prelude::*;

fn arg_value(args: &[String], flag: &str, default: usize) -> TractResult<usize> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| TractError::msg(format!("{flag} needs a whole number"))),
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

/// Inputs of the primitive graph (`input_ids`, `position_ids`, `attention_bias`, `logits_index`, then the past KV)
/// for `ids` appended after `past` cached positions.
fn inputs(ids: &[i64], past_len: usize, past: Vec<TValue>) -> TractResult<TVec<TValue>> {
    let seq = ids.len();
    let total = past_len + seq;
    let positions: Vec<i64> = (past_len..total).map(|p| p as i64).collect();
    let bias: Vec<f32> = (0..seq)
        .flat_map(|i| (0..total).map(move |j| if j > past_len + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    let mut v: TVec<TValue> = tvec![
        tensor1(ids).into_shape(&[1, seq])?.into_tvalue(),
        tensor1(&positions).into_shape(&[1, seq])?.into_tvalue(),
        tensor1(&bias).into_shape(&[seq, total])?.into_tvalue(),
        tensor1(&[seq as i64 - 1]).into_tvalue(),
    ];
    v.extend(past);
    Ok(v)
}

fn argmax(logits: &TValue) -> TractResult<i64> {
    let v = logits.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    let best = v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).ok_or_else(|| TractError::msg("no logits"))?;
    Ok(best.0 as i64)
}

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first().filter(|a| !a.starts_with("--")) else {
        return Err(TractError::msg("usage: tract_reference MODEL.onnx [--threads N] [--reps N] [--warmup N]"));
    };
    for a in args.iter().skip(1).filter(|a| a.starts_with("--")) {
        if !["--threads", "--reps", "--warmup"].contains(&a.as_str()) {
            return Err(TractError::msg(format!("unknown flag {a}")));
        }
    }
    let threads = arg_value(&args, "--threads", 1)?;
    let reps = arg_value(&args, "--reps", 5)?;
    let warmup = arg_value(&args, "--warmup", 1)?;
    if threads > 1 {
        tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::multithread(threads));
    }
    let t0 = Instant::now();
    // The symbol facts an ONNX file cannot carry (at least one token per call, a past never negative), declared the
    // way tract's own LLM exports do with `tract_assert`; tract needs them to run element-wise operators as loops.
    let model = tract_onnx::onnx().model_for_path(path)?;
    for a in ["seq>=1", "past>=0"] {
        model.symbols.add_assertion(a)?;
    }
    let plan = model.into_optimized()?.into_runnable()?;
    let load_s = t0.elapsed().as_secs_f64();
    let model = plan.model();
    // past_key_values inputs: [1, kv_heads, past, head_dim], from the fifth input on.
    let n_past = model.inputs.len() - 4;
    let kv = model.input_fact(4)?.shape.to_tvec();
    let (kv_heads, head_dim) = (kv[1].to_i64()? as usize, kv[3].to_i64()? as usize);
    let vocab = model.output_fact(0)?.shape.last().map(|d| d.to_i64()).transpose()?.unwrap_or(0) as usize;
    let empty = || -> TractResult<Vec<TValue>> {
        Ok(vec![Tensor::zero::<f32>(&[1, kv_heads, 0, head_dim])?.into_tvalue(); n_past])
    };
    // A fixed-seed linear congruential generator over the vocabulary, as llama-bench draws its prompt.
    let mut seed: u64 = 0x5eed;
    let prompt: Vec<i64> = (0..512)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) % vocab as u64) as i64
        })
        .collect();

    let mut state = plan.spawn()?;
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for i in 0..warmup + reps {
        let t = Instant::now();
        let out = state.run(inputs(&prompt, 0, empty()?)?)?;
        argmax(&out[0])?;
        let pp_s = t.elapsed().as_secs_f64();

        let mut out = state.run(inputs(&prompt[..1], 0, empty()?)?)?;
        let t = Instant::now();
        for step in 0..128 {
            let next = argmax(&out[0])?;
            let past: Vec<TValue> = out.into_iter().skip(1).collect();
            out = state.run(inputs(&[next], 1 + step, past)?)?;
        }
        argmax(&out[0])?;
        let tg_s = t.elapsed().as_secs_f64();
        if i >= warmup {
            pp.push(512.0 / pp_s);
            tg.push(128.0 / tg_s);
        }
    }
    let list = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
    println!(
        "{{\"tool\": \"tract-onnx 0.23.9 API (spawned state)\", \"threads\": {threads}, \"load_s\": {load_s:.3}, \
         \"pp512_tps\": {:.3}, \"tg128_tps\": {:.3}, \"pp512_samples\": [{}], \"tg128_samples\": [{}]}}",
        median(&pp),
        median(&tg),
        list(&pp),
        list(&tg)
    );
    Ok(())
}
