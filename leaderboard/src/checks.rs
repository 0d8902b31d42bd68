//! Tier 1's checks of one results file against the policy: registered build, suite and model; canonical weights;
//! greedy output or drift within the model's class; metrics that agree with each other; speed within the device's
//! plausible memory bandwidth; ISA features that fit the CPU; and, per cell, whether it may be ranked (no busy,
//! oversubscribed, throttled or noisy measurement).

use edgebench_core::metrics::{DECODE_TPS, ITL_MS, PREFILL_TPS, TTFT_MS};
use edgebench_core::results::{CellKey, CellResult, CellStatus, RunResults};

use crate::policy::Policy;

/// Decode speed against inter-token latency: `decode_tps × median ITL / 1000` must lie in this range (the median of
/// single steps and the per-repetition rate differ by skew, never by half).
pub const ITL_AGREEMENT: [f64; 2] = [0.67, 1.5];
/// A ranked metric's coefficient of variation above this makes the cell unranked (as the runner's `high_cv` flag).
pub const RANKED_MAX_CV: f64 = 0.10;
/// Metrics a board ranks by, whose noise and flags decide whether a cell is ranked.
pub const RANKED_METRICS: [&str; 3] = [DECODE_TPS.key, PREFILL_TPS.key, TTFT_MS.key];

/// The verdict on one measured cell.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct CellVerdict {
    /// Its coordinates.
    pub key: CellKey,
    /// Whether boards rank it.
    pub ranked: bool,
    /// Why not, when not.
    pub reasons: Vec<String>,
}

/// What tier 1's checks found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Reasons the submission is not tier 1 (empty: it is).
    pub failures: Vec<String>,
    /// Each `ok` cell.
    pub cells: Vec<CellVerdict>,
}

/// Runs tier 1's checks (the caller has already checked the signature and that every model is registered).
pub fn tier1(r: &RunResults, policy: &Policy) -> Outcome {
    let mut out = Outcome::default();
    let fail = |out: &mut Outcome, m: String| out.failures.push(m);
    if r.finished_at.is_none() {
        fail(&mut out, "the run did not finish (no finished_at)".into());
    }
    let m = &r.manifest;
    if !policy.edgebench_versions.contains(&m.edgebench_version) {
        fail(
            &mut out,
            format!(
                "edgebench {} is not an accepted version ({})",
                m.edgebench_version,
                policy.edgebench_versions.join(", ")
            ),
        );
    }
    match &m.binary_sha256 {
        None => fail(&mut out, "the results do not record the edgebench binary's SHA-256".into()),
        Some(b) if !policy.edgebench_binaries.is_empty() && !policy.edgebench_binaries.contains(b) => {
            fail(&mut out, format!("edgebench binary {b} is not an accepted build"))
        }
        Some(_) => {}
    }
    if !policy.suite.iter().any(|s| s.sha256 == m.suite.sha256 && s.name == m.suite.name) {
        fail(&mut out, format!("suite {:?} (sha256 {}) is not registered", m.suite.name, m.suite.sha256));
    }
    out.failures.extend(isa_mismatch(&r.device.arch, &r.device.cpu_model, &r.device.isa_features));
    out.failures.extend(isa_against_family(&r.device.cpu_model, &r.device.isa_features, &policy.isa));
    for c in r.cells.iter().filter(|c| c.status == CellStatus::Ok) {
        let v = cell(r, c, policy, &mut out.failures);
        out.cells.push(v);
    }
    if !out.cells.iter().any(|c| c.ranked) {
        let why: Vec<String> =
            out.cells.iter().map(|c| format!("{}: {}", c.key.label(), c.reasons.join(", "))).collect();
        fail(
            &mut out,
            format!("no cell can be ranked ({})", if why.is_empty() { "none measured".into() } else { why.join("; ") }),
        );
    }
    out
}

fn cell(r: &RunResults, c: &CellResult, policy: &Policy, failures: &mut Vec<String>) -> CellVerdict {
    let label = format!("{} ({})", c.key.label(), c.key.model);
    let mut reasons = Vec::new();
    let info = r.models.get(&c.key.model);
    let registered = info.and_then(|i| policy.model(&i.sha256));
    match (registered, c.backend.as_ref().and_then(|b| b.weights.as_ref())) {
        (Some(p), Some(w)) if w.source != p.weight_fingerprint => failures.push(format!(
            "{label}: the file's weight fingerprint {} is not the registered model's {}",
            w.source, p.weight_fingerprint
        )),
        (_, None) => reasons.push("no weight fingerprint recorded".into()),
        _ => {}
    }
    if let Some(p) = registered {
        let reference = p.greedy.iter().find(|g| g.workload == c.key.workload);
        let kld = c.median(edgebench_core::metrics::KLD_MEAN.key);
        let same = reference.is_some_and(|g| c.sample_output.as_deref() == Some(g.output.as_str()));
        match (reference, same, kld) {
            (Some(_), true, _) => {}
            (_, _, Some(k)) if k <= p.max_kld => {}
            (_, _, Some(k)) => failures.push(format!(
                "{label}: drift {k:.4} nats is beyond the model's class ({} nats){}",
                p.max_kld,
                if reference.is_some() { " and its greedy output differs from the reference" } else { "" }
            )),
            (Some(_), false, None) => {
                reasons.push("greedy output differs from the reference and no drift was measured".into())
            }
            (None, _, None) => reasons.push("no reference output for this workload and no drift measured".into()),
        }
    }
    let med = |k: &str| c.median(k);
    if let (Some(tps), Some(itl)) = (med(DECODE_TPS.key), med(ITL_MS.key)) {
        let q = tps * itl / 1000.0;
        if !(ITL_AGREEMENT[0]..=ITL_AGREEMENT[1]).contains(&q) {
            failures.push(format!("{label}: decode {tps:.1} t/s disagrees with the median inter-token latency {itl:.3} ms (product {q:.2}, expected 1)"));
        }
    }
    if let (Some(pp), Some(ttft)) = (med(PREFILL_TPS.key), med(TTFT_MS.key)) {
        let implied = pp * ttft / 1000.0;
        let ctx = c.backend.as_ref().map_or(usize::MAX, |b| b.context_length.max(1)) as f64;
        if !(0.5..=ctx).contains(&implied) {
            failures
                .push(format!("{label}: prefill {pp:.1} t/s and TTFT {ttft:.2} ms imply a {implied:.2}-token prompt"));
        }
    }
    if let (Some(tps), Some(i)) = (med(DECODE_TPS.key), info) {
        let gpu = (c.key.device != "cpu").then(|| r.device.gpus.first().cloned()).flatten();
        let hw = gpu.as_deref().unwrap_or(&r.device.cpu_model);
        let gbs = tps * i.file_bytes as f64 / 1e9;
        match policy.bandwidth_for(hw) {
            Some(b) if gbs > b.gb_per_s => failures.push(format!(
                "{label}: decode {tps:.1} t/s reads {gbs:.1} GB/s of weights, above {hw:?}'s plausible {} GB/s ({})",
                b.gb_per_s, b.source
            )),
            Some(_) => {}
            None => failures.push(format!(
                "{label}: the policy states no plausible bandwidth for {hw:?}, so its speed cannot be checked"
            )),
        }
    }
    for f in &c.validity.flags {
        let noisy_ranked =
            f.strip_prefix("high_cv:").is_some_and(|m| RANKED_METRICS.iter().any(|k| m.starts_with(&format!("{k}("))));
        if f.starts_with("busy_machine") || f == "oversubscribed" || f.starts_with("throttled") || noisy_ranked {
            reasons.push(format!("flagged {f}"));
        }
    }
    for k in RANKED_METRICS {
        if let Some(m) = c.metrics.get(k) {
            if m.summary.n >= 3 && m.summary.cv > RANKED_MAX_CV && !reasons.iter().any(|r| r.contains(k)) {
                reasons.push(format!(
                    "{k} varies by {:.0}% (above {:.0}%)",
                    m.summary.cv * 100.0,
                    RANKED_MAX_CV * 100.0
                ));
            }
        }
    }
    if med(DECODE_TPS.key).is_none() {
        reasons.push("no decode speed".into());
    }
    CellVerdict { key: c.key.clone(), ranked: reasons.is_empty(), reasons }
}

const X86: &[&str] = &["sse", "avx", "fma", "f16c", "bmi", "amx"];
const ARM: &[&str] = &["neon", "asimd", "sve", "dotprod", "i8mm", "bf16_arm", "fhm", "jscvt"];

/// ISA features or a CPU vendor that cannot belong to the architecture the results name.
pub fn isa_mismatch(arch: &str, cpu: &str, features: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let foreign: &[&str] = match arch {
        "x86_64" | "x86" => ARM,
        "aarch64" | "arm" => X86,
        other => {
            out.push(format!("architecture {other:?} is not one the leaderboard knows"));
            return out;
        }
    };
    let odd: Vec<&String> = features.iter().filter(|f| foreign.iter().any(|p| f.starts_with(p))).collect();
    if !odd.is_empty() {
        out.push(format!("ISA features {odd:?} do not exist on {arch}"));
    }
    let c = cpu.to_lowercase();
    let x86_vendor = ["intel", "amd ", "amd-", "epyc", "ryzen", "xeon"].iter().any(|v| c.contains(v));
    let arm_vendor =
        ["apple m", "cortex", "snapdragon", "neoverse", "ampere", "graviton"].iter().any(|v| c.contains(v));
    if (x86_vendor && !matches!(arch, "x86_64" | "x86")) || (arm_vendor && !matches!(arch, "aarch64" | "arm")) {
        out.push(format!("CPU {cpu:?} is not an {arch} CPU"));
    }
    out
}

/// Features the policy's table says this CPU family must report but it does not, or cannot have but it does.
pub fn isa_against_family(cpu: &str, features: &[String], rules: &[crate::policy::IsaRule]) -> Vec<String> {
    let c = cpu.to_lowercase();
    let has = |f: &String| features.iter().any(|x| x == f);
    let mut out = Vec::new();
    for r in rules.iter().filter(|r| c.contains(&r.cpu.to_lowercase())) {
        let missing: Vec<&String> = r.requires.iter().filter(|f| !has(f)).collect();
        let extra: Vec<&String> = r.forbids.iter().filter(|f| has(f)).collect();
        if !missing.is_empty() {
            out.push(format!("CPU {cpu:?} does not report {missing:?}, which every {:?} has ({})", r.cpu, r.source));
        }
        if !extra.is_empty() {
            out.push(format!("CPU {cpu:?} reports {extra:?}, which no {:?} has ({})", r.cpu, r.source));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isa_and_vendor_against_arch() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(isa_mismatch("x86_64", "AMD EPYC 9R14", &f(&["avx2", "avx512f"])).is_empty());
        assert_eq!(isa_mismatch("x86_64", "AMD EPYC", &f(&["avx2", "neon"])).len(), 1);
        assert_eq!(isa_mismatch("aarch64", "Intel Xeon", &f(&["neon"])).len(), 1);
        assert!(isa_mismatch("aarch64", "Cortex-A76", &f(&["neon", "dotprod"])).is_empty());
        assert_eq!(isa_mismatch("riscv64", "x", &[]).len(), 1);
        let rules = [crate::policy::IsaRule {
            cpu: "EPYC 7".into(),
            requires: vec!["avx2".into()],
            forbids: vec!["avx512f".into()],
            source: "s".into(),
        }];
        assert!(isa_against_family("AMD EPYC 7R13", &f(&["avx2"]), &rules).is_empty());
        assert_eq!(isa_against_family("AMD EPYC 7R13", &f(&["avx512f"]), &rules).len(), 2);
        assert!(isa_against_family("AMD EPYC 9R14", &f(&["avx512f"]), &rules).is_empty());
    }
}
