//! `edgebench recommend`'s reasoning: measured cells grouped into candidates (model variant × backend × device ×
//! threads, per measuring device), each figure taken on its unfavourable bound, each budget checked as pass, fail
//! (by how much) or unknown; then ([`choose`]) the ranking, the Pareto front, the pick, its trade-offs, the budget
//! changes that would change it and the runs that would fill the unknowns. Pure: the caller reads the files.

mod choose;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use edgebench_core::drift::Drift;
use edgebench_core::recommend::{
    Bound, Budget, Candidate, Check, Evidence, Input, Objective, Recommendation, RunArgs, Verdict,
};
use edgebench_core::results::{CellResult, CellStatus, DeviceFingerprint, Metric, RunResults};

/// One results file as read: its path and SHA-256 (cited in the answer) and its contents.
pub struct Source<'a> {
    /// Path as given.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// The results.
    pub results: &'a RunResults,
}

/// `AMD EPYC 9B14, 2 CPUs, 24 GiB (memory 1 GiB)`: a device as the answer names it.
pub fn device_label(d: &DeviceFingerprint) -> String {
    let gib = d.ram_bytes as f64 / (1u64 << 30) as f64;
    let mut s = format!("{}, {} CPUs, {gib:.0} GiB", d.cpu_model, d.logical_cpus);
    if let Some(l) = &d.limits {
        s.push_str(&format!(" (limited: {})", l.describe()));
    }
    s
}

/// Whether two fingerprints describe the same device: CPU model, architecture, CPUs, memory (within 3%) and the
/// limits a constrained run applied.
pub fn same_device(a: &DeviceFingerprint, b: &DeviceFingerprint) -> bool {
    let ram = |x: u64| x as f64;
    a.cpu_model == b.cpu_model
        && a.arch == b.arch
        && a.logical_cpus == b.logical_cpus
        && (ram(a.ram_bytes) - ram(b.ram_bytes)).abs() <= 0.03 * ram(a.ram_bytes).max(ram(b.ram_bytes))
        && a.limits == b.limits
}

/// Bytes per cached value of a KV cache element type, as backends record it.
fn kv_bytes(ty: &str) -> Option<f64> {
    match ty {
        "f32" => Some(4.0),
        "f16" | "bf16" => Some(2.0),
        "q8_0" => Some(34.0 / 32.0),
        "q4_0" => Some(18.0 / 32.0),
        _ => None,
    }
}

fn lower(m: &Metric) -> (f64, &'static str) {
    match m.summary.median_ci95 {
        Some([lo, _]) => (lo, "lower 95% limit of the median"),
        None => (m.summary.min, "smallest sample (too few for an interval)"),
    }
}

fn upper(m: &Metric) -> (f64, &'static str) {
    match m.summary.median_ci95 {
        Some([_, hi]) => (hi, "upper 95% limit of the median"),
        None => (m.summary.max, "largest sample (too few for an interval)"),
    }
}

/// The metric's 95% interval of the median, else the range of its samples.
fn interval(m: &Metric) -> [f64; 2] {
    m.summary.median_ci95.unwrap_or([m.summary.min, m.summary.max])
}

/// Significant figures for thresholds and figures in sentences.
pub(crate) fn sig(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - 1 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

/// The cells of one candidate, from one or more files measured on the same device.
struct Group<'a> {
    first: &'a CellResult,
    device: &'a DeviceFingerprint,
    suite: String,
    cells: Vec<(usize, &'a CellResult)>,
    model: edgebench_core::results::ModelInfo,
}

fn run_args(g: &Group<'_>, options: &BTreeMap<String, String>) -> RunArgs {
    let k = &g.first.key;
    // A local file (its id is the file's name, or that name before a variant's `@TYPE`) is named by its path (for a
    // variant, the copy that ran); a registry id by itself, so the command works on another machine.
    let file_name = std::path::Path::new(&g.model.path).file_name().and_then(|n| n.to_str()).unwrap_or("");
    let base = g.model.id.split('@').next().unwrap_or("");
    let local = !base.is_empty() && (file_name == g.model.id || file_name.split('.').next() == Some(base));
    let model = if local { g.model.path.clone() } else { g.model.id.clone() };
    let mut limit_flags = Vec::new();
    if let Some(l) = &g.device.limits {
        if let Some(b) = l.memory_bytes {
            limit_flags.push("--memory-limit".into());
            limit_flags.push(edgebench_core::text::bytes_iec(b).replace(' ', ""));
        }
        if let Some(q) = l.cpu_quota {
            limit_flags.push("--cpu-quota".into());
            limit_flags.push(q.to_string());
        }
    }
    RunArgs {
        suite: g.suite.clone(),
        model,
        device: k.device.clone(),
        backend_opts: options.iter().map(|(key, v)| format!("{}:{key}={v}", k.backend)).collect(),
        limit_flags,
    }
}

fn status_text(c: &CellResult) -> String {
    match &c.status {
        CellStatus::Ok => "ok".into(),
        CellStatus::Skipped { reason } => format!("skipped({reason})"),
        CellStatus::Failed { kind, message } => {
            let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            format!("failed({kind}: {message})")
        }
    }
}

fn main_weight_type(m: &edgebench_core::results::ModelInfo) -> String {
    m.tensor_types
        .iter()
        .filter(|(t, _)| !matches!(t.as_str(), "F32" | "F16" | "BF16"))
        .max_by_key(|(_, n)| **n)
        .or_else(|| m.tensor_types.iter().max_by_key(|(_, n)| **n))
        .map(|(t, _)| t.clone())
        .unwrap_or_else(|| "unknown".into())
}

/// The figures of one candidate, each on its unfavourable bound, and why any is missing.
fn figures(g: &Group<'_>, budget: &Budget, c: &mut Candidate) {
    let ok: Vec<&CellResult> = g.cells.iter().map(|(_, c)| *c).filter(|c| c.status == CellStatus::Ok).collect();
    // Decode: the lowest lower limit over the workloads, derated by the worst sustained end/start ratio.
    let decode = ok
        .iter()
        .filter_map(|cell| cell.metrics.get("decode_tps").map(|m| ((lower(m), interval(m)), &cell.key.workload)))
        .min_by(|a, b| a.0 .0 .0.total_cmp(&b.0 .0 .0));
    let throttle = ok
        .iter()
        .filter_map(|cell| cell.sustained.as_ref().and_then(|s| s.decode_tps_ratio).map(|r| (r, &cell.key.workload)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    match decode {
        Some((((v, how), [lo, hi]), wl)) => {
            let (factor, derate) = match throttle {
                Some((r, swl)) if r < 1.0 => (r, format!(", derated ×{r:.3} (sustained {swl}: end / start)")),
                Some((r, swl)) => (1.0, format!("; sustained {swl} did not throttle (end / start {r:.3})")),
                None => (1.0, "; not checked for throttling (no sustained run)".to_string()),
            };
            c.decode_tps = Some(Bound {
                value: v * factor,
                how: format!("{wl}: {how}{derate}"),
                interval: Some([lo * factor, hi * factor]),
            });
        }
        None => {
            c.unknown.insert("decode_tps".into(), "no workload that decodes (run the standard suite)".into());
        }
    }
    match ok
        .iter()
        .filter_map(|cell| cell.metrics.get("ttft_ms").map(|m| ((upper(m), interval(m)), &cell.key.workload)))
        .max_by(|a, b| a.0 .0 .0.total_cmp(&b.0 .0 .0))
    {
        Some((((v, how), iv), wl)) => {
            c.ttft_ms = Some(Bound { value: v, how: format!("{wl}: {how}"), interval: Some(iv) })
        }
        None => {
            c.unknown.insert("ttft_ms".into(), "no time to first token measured".into());
        }
    }
    // Memory: the largest peak RSS sample, plus a KV cache of --ctx tokens at the backend's element type (an upper
    // bound: the peak already holds the workload's own cache).
    let rss = ok
        .iter()
        .filter_map(|cell| cell.metrics.get("peak_rss_mib").map(|m| (m.summary.max, *cell)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match (rss, budget.ctx) {
        (None, _) => {
            c.unknown.insert("ram_mib".into(), "no peak RSS measured".into());
        }
        (Some((v, cell)), None) => {
            c.ram_mib =
                Some(Bound { value: v, how: format!("{}: largest peak RSS", cell.key.workload), interval: None })
        }
        (Some((v, cell)), Some(ctx)) => {
            let kv_type = cell.backend.as_ref().and_then(|b| b.kv_cache.clone());
            match (g.model.kv_values_per_token, kv_type.as_deref().and_then(|t| kv_bytes(t).map(|b| (t, b)))) {
                (Some(values), Some((ty, bytes))) => {
                    let kv_mib = values as f64 * bytes * ctx as f64 / (1u64 << 20) as f64;
                    c.ram_mib = Some(Bound {
                        interval: None,
                        value: v + kv_mib,
                        how: format!(
                            "{}: largest peak RSS {} MiB + KV cache of {ctx} tokens at {ty} ({} MiB)",
                            cell.key.workload,
                            sig(v),
                            sig(kv_mib)
                        ),
                    });
                }
                (None, _) => {
                    c.unknown.insert(
                        "ram_mib".into(),
                        "the results do not record the model's KV size per token (older edgebench)".into(),
                    );
                }
                (_, None) => {
                    c.unknown.insert(
                        "ram_mib".into(),
                        format!(
                            "the backend's KV cache type is not recorded ({})",
                            kv_type.as_deref().unwrap_or("none")
                        ),
                    );
                }
            }
        }
    }
    // Drift: the largest mean KL divergence plus its standard error over the cells that measured it.
    let mut drift_why = None;
    let mut kld: Option<(f64, String, [f64; 2])> = None;
    for cell in &ok {
        match &cell.drift {
            Some(Drift::Measured(d)) => {
                let v = d.stats.kld.value + d.stats.kld.err;
                if kld.as_ref().is_none_or(|(k, _, _)| v > *k) {
                    let (mean, err) = (d.stats.kld.value, d.stats.kld.err);
                    kld = Some((
                        v,
                        format!(
                            "{}: mean KLD {} + standard error {} ({} tokens, {} level)",
                            cell.key.workload,
                            sig(d.stats.kld.value),
                            sig(d.stats.kld.err),
                            d.stats.tokens,
                            serde_json::to_value(d.level)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default()
                        ),
                        [mean - err, mean + err],
                    ));
                }
            }
            Some(Drift::Skipped { reason }) => drift_why = Some(format!("drift skipped: {reason}")),
            Some(Drift::Failed { message }) => drift_why = Some(format!("drift check failed: {message}")),
            None => {}
        }
    }
    match kld {
        Some((value, how, iv)) => c.kld = Some(Bound { value, how, interval: Some(iv) }),
        None => {
            c.unknown.insert(
                "kld".into(),
                drift_why.unwrap_or_else(|| "no drift check in these results (run with --drift short)".into()),
            );
        }
    }
    match ok
        .iter()
        .filter_map(|cell| {
            cell.metrics.get("decode_j_per_token").map(|m| ((upper(m), interval(m)), &cell.key.workload))
        })
        .max_by(|a, b| a.0 .0 .0.total_cmp(&b.0 .0 .0))
    {
        Some((((v, how), iv), wl)) => {
            c.j_per_token = Some(Bound { value: v, how: format!("{wl}: {how}"), interval: Some(iv) })
        }
        None => {
            let meters: Vec<&str> = g
                .device
                .energy_meters
                .iter()
                .filter(|m| m.contains("unavailable"))
                .filter_map(|m| m.split(':').next())
                .collect();
            let why = if meters.is_empty() {
                "no energy measured".to_string()
            } else {
                format!(
                    "no energy meter readable on {} ({} unavailable; `edgebench device` says why)",
                    g.device.cpu_model,
                    meters.join(", ")
                )
            };
            c.unknown.insert("j_per_token".into(), why);
        }
    }
}

/// `value` against a lower limit (`at_least`) or an upper one.
fn check(
    name: &str,
    flag: &str,
    unit: &str,
    figure: Option<&Bound>,
    unknown: Option<&String>,
    limit: f64,
    at_least: bool,
) -> Check {
    let verdict = match figure {
        None => Verdict::Unknown { why: unknown.cloned().unwrap_or_else(|| "not measured".into()) },
        Some(b) if (at_least && b.value >= limit) || (!at_least && b.value <= limit) => Verdict::Pass,
        Some(b) => {
            let by = if at_least {
                format!("{} {unit} < {limit} {unit} ({:.0}% short)", sig(b.value), 100.0 * (1.0 - b.value / limit))
            } else if b.value > 2.0 * limit {
                format!("{} {unit} > {limit} {unit} ({:.1}× the limit)", sig(b.value), b.value / limit)
            } else {
                format!("{} {unit} > {limit} {unit} ({:.0}% over)", sig(b.value), 100.0 * (b.value / limit - 1.0))
            };
            Verdict::Fail { by: by.replace("  ", " ").replace(" )", ")") }
        }
    };
    let op = if at_least { "≥" } else { "≤" };
    Check { constraint: format!("{name} {op} {limit} {unit}").trim_end().to_string(), flag: flag.into(), verdict }
}

fn checks(budget: &Budget, c: &Candidate, failed: &[String]) -> Vec<Check> {
    let mut out = Vec::new();
    if !failed.is_empty() {
        out.push(Check {
            constraint: "every cell ran".into(),
            flag: String::new(),
            verdict: Verdict::Fail { by: failed.join("; ") },
        });
    }
    let u = |k: &str| c.unknown.get(k);
    if let Some(x) = budget.min_decode_tps {
        out.push(check("decode", "--min-decode-tps", "t/s", c.decode_tps.as_ref(), u("decode_tps"), x, true));
    }
    if let Some(x) = budget.max_ttft_ms {
        out.push(check("TTFT", "--max-ttft-ms", "ms", c.ttft_ms.as_ref(), u("ttft_ms"), x, false));
    }
    if let Some(x) = budget.ram_mib {
        out.push(check("memory", "--ram-mib", "MiB", c.ram_mib.as_ref(), u("ram_mib"), x, false));
    }
    if let Some(x) = budget.max_kld {
        out.push(check("KLD", "--max-kld", "", c.kld.as_ref(), u("kld"), x, false));
    }
    if let Some(x) = budget.max_j_per_token {
        out.push(check(
            "decode energy",
            "--max-j-per-token",
            "J/token",
            c.j_per_token.as_ref(),
            u("j_per_token"),
            x,
            false,
        ));
    }
    out
}

/// Candidates from `sources` (only cells of `workload` when set), checked against `budget`, ranked for
/// `objective`, as seen from the device `here`.
pub fn recommend(
    sources: &[Source<'_>],
    here: &DeviceFingerprint,
    budget: &Budget,
    objective: Objective,
    workload: Option<&str>,
) -> Recommendation {
    // Device, model file, model id, backend, device as run, threads, options: one candidate each.
    type Key = (String, String, String, String, String, usize, String);
    let mut groups: BTreeMap<Key, Group<'_>> = BTreeMap::new();
    for (i, s) in sources.iter().enumerate() {
        let dev = device_label(&s.results.device);
        for cell in &s.results.cells {
            if workload.is_some_and(|w| w != cell.key.workload) {
                continue;
            }
            let Some(model) = s.results.models.get(&cell.key.model) else { continue };
            let options = cell.load_options.as_ref().map(|o| o.options.clone()).unwrap_or_default();
            let k = &cell.key;
            let key = (
                dev.clone(),
                model.sha256.clone(),
                k.model.clone(),
                k.backend.clone(),
                k.device.clone(),
                k.threads,
                serde_json::to_string(&options).unwrap_or_default(),
            );
            groups
                .entry(key)
                .or_insert_with(|| Group {
                    first: cell,
                    device: &s.results.device,
                    // A built-in suite by name, a suite file by its path.
                    suite: match s.results.manifest.suite.path.strip_prefix("builtin:") {
                        Some(name) => name.to_string(),
                        None if s.results.manifest.suite.path.is_empty() => s.results.manifest.suite.name.clone(),
                        None => s.results.manifest.suite.path.clone(),
                    },
                    cells: Vec::new(),
                    model: model.clone(),
                })
                .cells
                .push((i, cell));
        }
    }
    let several_devices = {
        let mut d: Vec<String> = groups.keys().map(|k| k.0.clone()).collect();
        d.dedup();
        d.len() > 1
    };
    let mut candidates = Vec::new();
    for g in groups.values() {
        let k = &g.first.key;
        let options = g.first.load_options.as_ref().map(|o| o.options.clone()).unwrap_or_default();
        let evidence = if same_device(g.device, here) {
            Evidence::Here
        } else {
            Evidence::Elsewhere { device: device_label(g.device) }
        };
        let mut label = format!("{} {} {} t{}", k.model, k.backend, k.device, k.threads);
        for (key, v) in &options {
            label.push_str(&format!(" {key}={v}"));
        }
        // Named in the label only when the inputs come from several devices (else the header names the one).
        match &evidence {
            Evidence::Elsewhere { device } if several_devices => label.push_str(&format!(" [on {device}]")),
            _ => {}
        }
        let mut c = Candidate {
            label,
            model: k.model.clone(),
            model_sha256: g.model.sha256.clone(),
            weights: main_weight_type(&g.model),
            backend: k.backend.clone(),
            device: k.device.clone(),
            threads: k.threads,
            options: options.clone(),
            evidence,
            cells: g.cells.iter().map(|(i, c)| (*i, c.key.workload.clone(), status_text(c))).collect(),
            decode_tps: None,
            ttft_ms: None,
            ram_mib: None,
            kld: None,
            j_per_token: None,
            unknown: BTreeMap::new(),
            checks: Vec::new(),
            command: String::new(),
            run: run_args(g, &options),
        };
        c.command = edgebench_core::recommend::command_line(&c.run.argv(None, &[&k.backend], &[k.threads], &[]));
        figures(g, budget, &mut c);
        if g.cells.iter().all(|(_, cell)| cell.status != CellStatus::Ok) {
            for why in c.unknown.values_mut() {
                *why = "no cell of it finished".into();
            }
        }
        let failed: Vec<String> = g
            .cells
            .iter()
            .filter(|(_, cell)| cell.status != CellStatus::Ok)
            .map(|(_, cell)| format!("{}: {}", cell.key.workload, status_text(cell)))
            .collect();
        c.checks = checks(budget, &c, &failed);
        candidates.push(c);
    }
    let inputs = sources
        .iter()
        .map(|s| Input {
            path: s.path.clone(),
            sha256: s.sha256.clone(),
            run_id: s.results.run_id.clone(),
            device: device_label(&s.results.device),
        })
        .collect();
    choose::choose(Recommendation {
        inputs,
        here: device_label(here),
        budget: budget.clone(),
        objective,
        workload: workload.map(str::to_string),
        candidates,
        front: Vec::new(),
        pick: None,
        trade_offs: Vec::new(),
        changes: Vec::new(),
        missing: Vec::new(),
    })
}
