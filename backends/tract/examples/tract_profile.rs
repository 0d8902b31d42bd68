//! Per-operator profile of tract on an edgebench ONNX export, at concrete prefill and decode shapes: each node's
//! evaluation is timed through tract's own evaluation hook (`SimpleState::run_plan_with_eval`, what tract's CLI
//! profiler uses), summed by operator.
//!
//!     cargo run --release -p edgebench-backend-tract --example tract_profile -- MODEL.onnx [THREADS=2] [PROMPT=512] [STEPS=32]
//!
//! Prints the prefill call, then the mean of STEPS decode steps after a 1-token prompt (tg128's shape), each as
//! wall time per call and the operators taking the most time. Environment: `PROFILE_NO_ASSERT` loads without the
//! backend's symbol facts; `PROFILE_TRANSFORMS=a,b` applies tract's named model transforms after decluttering (e.g.
//! tract-transformers' `transformers_detect_all`, `detect_kv_cache`); `PROFILE_NODES` lists every node's time;
//! `PROFILE_DUMP=PREFIX` prints the planned nodes whose names start with PREFIX with their inputs' facts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use edgebench_onnx::backend::Step;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimpleState};

type Profile = HashMap<String, (Duration, usize)>;

fn inputs(st: &Step, past: Vec<TValue>) -> TractResult<TVec<TValue>> {
    let mut v: TVec<TValue> = tvec![
        tensor1(&st.ids).into_shape(&[1, st.seq])?.into_tvalue(),
        tensor1(&st.positions).into_shape(&[1, st.seq])?.into_tvalue(),
        tensor1(&st.bias()).into_shape(&[st.seq, st.total])?.into_tvalue(),
        tensor1(&st.rows).into_tvalue(),
    ];
    v.extend(past);
    Ok(v)
}

fn call(
    state: &mut SimpleState<TypedFact, Box<dyn TypedOp>>,
    prof: &mut Profile,
    ins: TVec<TValue>,
) -> TractResult<(TVec<TValue>, Duration)> {
    let t = Instant::now();
    let out = state.run_plan_with_eval(ins, |ctx, st, node, input| {
        let t = Instant::now();
        let r = eval(ctx, st, node, input);
        let d = t.elapsed();
        let e = prof.entry(node.op().name().to_string()).or_default();
        e.0 += d;
        e.1 += 1;
        if std::env::var_os("PROFILE_NODES").is_some() {
            let e = prof.entry(format!("node {} [{}]", node.name, node.op().name())).or_default();
            e.0 += d;
        }
        r
    })?;
    Ok((out, t.elapsed()))
}

fn print(title: &str, prof: &Profile, wall: Duration, calls: usize) {
    let total: Duration = prof.iter().filter(|(k, _)| !k.starts_with("node ")).map(|(_, v)| v.0).sum();
    println!(
        "{title}: {:.2} ms per call wall, {:.2} ms in operators, {} nodes per call",
        wall.as_secs_f64() * 1e3 / calls as f64,
        total.as_secs_f64() * 1e3 / calls as f64,
        prof.iter().filter(|(k, _)| !k.starts_with("node ")).map(|(_, v)| v.1).sum::<usize>() / calls
    );
    let mut rows: Vec<_> = prof.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .0));
    for (op, (d, n)) in rows.into_iter().take(if std::env::var_os("PROFILE_NODES").is_some() { 5000 } else { 12 }) {
        println!(
            "  {op:<28} {:>9.3} ms/call {:>5.1}%  x{}",
            d.as_secs_f64() * 1e3 / calls as f64,
            100.0 * d.as_secs_f64() / total.as_secs_f64(),
            n / calls
        );
    }
}

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        return Err(TractError::msg("usage: profile MODEL.onnx [THREADS] [PROMPT] [STEPS]"));
    };
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (threads, prompt, steps) = (arg(2, 2), arg(3, 512), arg(4, 32));
    if threads > 1 {
        tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::multithread(threads));
    }
    let onnx = tract_onnx::onnx();
    let proto = onnx.proto_model_for_path(path)?;
    let facts = edgebench_onnx::fingerprint::file_facts(&proto, std::path::Path::new(path))?.graph;
    let t = Instant::now();
    // The backend's load (symbol facts declared), or with PROFILE_NO_ASSERT set the file as tract reads it alone.
    let typed = if std::env::var_os("PROFILE_NO_ASSERT").is_some() {
        onnx.model_for_proto_model(&proto)?.into_typed()?
    } else {
        edgebench_backend_tract::typed_model(&onnx, &proto)?
    };
    let mut typed = typed.into_decluttered()?;
    if let Ok(list) = std::env::var("PROFILE_TRANSFORMS") {
        // Links tract-transformers, whose transforms register themselves by name.
        let _ = tract_transformers::tract_transformers_registry;
        for name in list.split(',').filter(|s| !s.is_empty()) {
            let t = tract_onnx::tract_core::transform::get_transform(name)?
                .ok_or_else(|| TractError::msg(format!("no transform {name}")))?;
            t.transform(&mut typed)?;
            println!("applied {name}: {} nodes", typed.nodes.len());
        }
    }
    let plan = typed.into_optimized()?.into_runnable()?;
    println!("{path}: optimized and planned in {:.1} s; {threads} threads", t.elapsed().as_secs_f64());
    if let Ok(prefix) = std::env::var("PROFILE_DUMP") {
        let m = plan.model();
        for n in m.nodes.iter().filter(|n| n.name.starts_with(&prefix)) {
            let ins: Vec<String> = n
                .inputs
                .iter()
                .map(|o| {
                    let src = m.node(o.node);
                    let succ = src.outputs[o.slot].successors.len();
                    format!("{} ({}; {} successors; {:?})", src.name, src.op.name(), succ, src.outputs[o.slot].fact)
                })
                .collect();
            println!("{} [{}] <- {}", n.name, n.op.name(), ins.join(" | "));
        }
    }
    let stateful = plan.model().inputs.len() == 4;
    let empty = || -> TractResult<Vec<TValue>> {
        if stateful {
            return Ok(vec![]);
        }
        let z = Tensor::zero::<f32>(&[1, facts.n_head_kv, 0, facts.head_dim])?.into_tvalue();
        Ok(vec![z; 2 * facts.n_layer])
    };
    // A state-owned KV cache (tract's `detect_kv_cache`) starts empty in a fresh state; else the past is an input.
    let fresh = || SimpleState::new(&plan);
    let mut state = fresh()?;
    let ids: Vec<u32> = (0..prompt as u32).map(|i| (i * 7919 + 13) % facts.vocab as u32).collect();

    // Warm-up, then the measured prefill.
    let mut p = Profile::new();
    call(&mut state, &mut p, inputs(&Step::new(0, &ids, false), empty()?)?)?;
    let mut p = Profile::new();
    if stateful {
        state = fresh()?;
    }
    let (_, wall) = call(&mut state, &mut p, inputs(&Step::new(0, &ids, false), empty()?)?)?;
    print(&format!("prefill of {prompt} tokens"), &p, wall, 1);

    if stateful {
        state = fresh()?;
    }
    let (out, _) = call(&mut state, &mut Profile::new(), inputs(&Step::new(0, &[1], false), empty()?)?)?;
    let mut past: Vec<TValue> = if stateful { vec![] } else { out.into_iter().skip(1).collect() };
    let mut p = Profile::new();
    let mut wall = Duration::ZERO;
    for i in 0..steps {
        let (out, w) = call(&mut state, &mut p, inputs(&Step::new(1 + i, &[(i as u32 * 31) % 1000], false), past)?)?;
        wall += w;
        past = if stateful { vec![] } else { out.into_iter().skip(1).collect() };
    }
    print(&format!("decode: mean of {steps} steps after a 1-token prompt"), &p, wall, steps);
    Ok(())
}
