//! Runs the default model through the native engine for profiling: `cargo run --release -p
//! edgebench-backend-native --example profile -- [threads] [pp|tg]` (pp: one 512-token prefill repeated; tg: 256
//! single-token decode steps), printing tokens/s; `EDGEBENCH_PROFILE_MODEL=<gguf>` picks another file. With
//! `--features op-profile`, also the time per token of each stage of the forward pass (`profile.rs`); pair with
//! `perf record -e cpu-clock` to see inside a stage.

use edgebench_backend_native::NativeBackend;
use edgebench_core::Backend;
use edgebench_testkit::fixtures::{opts, real_model};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let mode = args.get(2).map(String::as_str).unwrap_or("tg");
    let mut o = opts(&[]);
    o.threads = threads;
    let spec = match std::env::var_os("EDGEBENCH_PROFILE_MODEL") {
        Some(p) => edgebench_core::ModelSpec { id: "profile".into(), path: p.into(), sha256: String::new() },
        None => real_model(),
    };
    let model = NativeBackend.load(&spec, &o).expect("load");
    let t = std::time::Instant::now();
    let tokens = match mode {
        "pp" => {
            let prompt: Vec<u32> = (0..512).map(|i| 100 + (i * 37) % 40000).collect();
            for _ in 0..3 {
                model.new_session().unwrap().forward(&prompt).unwrap();
            }
            3 * 512
        }
        _ => {
            let mut s = model.new_session().unwrap();
            for i in 0..256u32 {
                s.forward(&[100 + i]).unwrap();
            }
            256
        }
    };
    let wall = t.elapsed().as_secs_f64();
    println!("{mode}: {:.1} t/s ({threads} threads)", tokens as f64 / wall);
    #[cfg(feature = "op-profile")]
    {
        use edgebench_backend_native::profile::{snapshot, Stage};
        let stages = snapshot();
        let timed: f64 =
            stages.iter().filter(|(s, _)| ![Stage::Wait, Stage::KvStore].contains(s)).map(|(_, secs)| secs).sum();
        println!(
            "per token (µs), calling thread; {:.1} of {:.1} µs in the stages below",
            1e6 * timed / tokens as f64,
            1e6 * wall / tokens as f64
        );
        for (stage, secs) in stages {
            println!("{:>10.1}  {:>5.1}%  {}", 1e6 * secs / tokens as f64, 100.0 * secs / wall, stage.name());
        }
    }
}
