//! What the harness adds per decode step: the timed loop of `run_repetition` around a mock backend that does no
//! work but return SmolLM2-sized logits (49152), so what is measured is logits handling, greedy sampling, clocks and
//! bookkeeping. Compare the per-element time with a real backend's inter-token latency from `edgebench run`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edgebench_backend_mock::MockBackend;
use edgebench_core::sampler::Sampler;
use edgebench_core::{Backend, DeviceRequest, LoadOptions, ModelSpec};
use edgebench_runner::workload::run_repetition;

const STEPS: usize = 64;
const VOCAB: usize = 49152;

fn overhead(c: &mut Criterion) {
    let opts = LoadOptions {
        threads: 1,
        device: DeviceRequest::cpu(),
        options: [("vocab".to_string(), VOCAB.to_string())].into_iter().collect(),
    };
    let spec = ModelSpec { id: "mock".into(), path: "/nonexistent".into(), sha256: String::new() };
    let model = MockBackend.load(&spec, &opts).unwrap();
    let mut g = c.benchmark_group("harness");
    g.throughput(Throughput::Elements(STEPS as u64));
    g.bench_function("decode_step_overhead_vocab49152", |b| {
        b.iter(|| {
            let mut s = model.new_session().unwrap();
            black_box(run_repetition(s.as_mut(), &[1, 2, 3], STEPS, Sampler::Greedy, VOCAB).unwrap())
        })
    });
    g.bench_function("greedy_sample_vocab49152", |b| {
        let logits: Vec<f32> = (0..VOCAB).map(|i| ((i * 7919) % 1000) as f32 * 1e-3).collect();
        b.iter(|| black_box(Sampler::Greedy.sample(black_box(&logits))))
    });
    g.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
