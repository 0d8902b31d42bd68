//! The vocabulary of `edgebench recommend`: a device's budgets, the measured candidates with each constraint's
//! verdict on its unfavourable bound, the Pareto front, the pick and what would change it. Computed by
//! `edgebench_stats::recommend`, rendered by `edgebench_reports::recommend`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the pick maximizes (speed) or minimizes (the others) among the feasible candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Highest decode t/s (lower 95% limit).
    #[default]
    Speed,
    /// Least drift (mean KL divergence plus its error).
    Quality,
    /// Least memory (peak RSS plus the KV cache at `--ctx`).
    Memory,
    /// Least decode energy per token (upper limit).
    Energy,
}

impl Objective {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Speed => "speed",
            Objective::Quality => "quality",
            Objective::Memory => "memory",
            Objective::Energy => "energy",
        }
    }
}

/// The device's budgets; `None` is no constraint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Memory available to the model, MiB (peak RSS plus the KV cache at `ctx`).
    pub ram_mib: Option<f64>,
    /// Least decode speed, t/s.
    pub min_decode_tps: Option<f64>,
    /// Longest time to first token, ms.
    pub max_ttft_ms: Option<f64>,
    /// Largest mean KL divergence against the reference, nats.
    pub max_kld: Option<f64>,
    /// Largest decode energy per token, J.
    pub max_j_per_token: Option<f64>,
    /// Context length the KV cache must hold, tokens.
    pub ctx: Option<u64>,
}

/// Where a candidate's figures were measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// On this device (its fingerprint matches: CPU model, CPUs, architecture, memory, limits).
    Here,
    /// On another device, named; never ranked above a candidate measured here.
    Elsewhere {
        /// The device that measured it.
        device: String,
    },
}

/// A figure on its unfavourable bound, and how it was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bound {
    /// The value.
    pub value: f64,
    /// How: which workload, which bound, any derating.
    pub how: String,
    /// The figure's uncertainty: the 95% interval of the median (derated like the value), or mean ± standard error
    /// for drift; `None` for a single sample. Two candidates whose intervals overlap tie on that figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
}

/// A constraint's verdict for one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Met on the unfavourable bound.
    Pass,
    /// Not met, by how much.
    Fail {
        /// E.g. `18.2 t/s < 20 t/s (9% short)`.
        by: String,
    },
    /// Not measured; never counts as a pass.
    Unknown {
        /// Why it is unknown.
        why: String,
    },
}

/// One constraint checked on one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The budget, e.g. `decode ≥ 20 t/s`.
    pub constraint: String,
    /// Its flag, e.g. `--min-decode-tps`.
    pub flag: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// A measured cell group (model variant × backend × device × threads), a candidate answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// `model backend device tN`, and the device where measured elsewhere.
    pub label: String,
    /// Model id as run.
    pub model: String,
    /// Its file's SHA-256.
    pub model_sha256: String,
    /// Weight types of the file, e.g. `Q4_1`.
    pub weights: String,
    /// Backend.
    pub backend: String,
    /// Device as run (`cpu`, `cuda:0`).
    pub device: String,
    /// Threads.
    pub threads: usize,
    /// Backend options it ran with.
    pub options: BTreeMap<String, String>,
    /// Where it was measured.
    pub evidence: Evidence,
    /// The input files and cell labels its figures come from: `(file index, workload, status)`.
    pub cells: Vec<(usize, String, String)>,
    /// Lower 95% limit of decode t/s, derated where a sustained run throttled.
    pub decode_tps: Option<Bound>,
    /// Upper limit of time to first token, ms.
    pub ttft_ms: Option<Bound>,
    /// Peak RSS plus the KV cache at `--ctx`, MiB.
    pub ram_mib: Option<Bound>,
    /// Mean KL divergence plus its standard error, nats.
    pub kld: Option<Bound>,
    /// Upper limit of decode J/token.
    pub j_per_token: Option<Bound>,
    /// Why each of the above is missing, by field name.
    pub unknown: BTreeMap<String, String>,
    /// The budget's constraints, checked; a candidate whose cells all failed has one check `runs` that failed.
    pub checks: Vec<Check>,
    /// The `edgebench run` command that measures it again.
    pub command: String,
    /// The parts of that command, to build others (the runs that fill unknowns).
    #[serde(skip)]
    pub run: RunArgs,
}

/// What `edgebench run` needs to measure a candidate again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunArgs {
    /// Suite name or file.
    pub suite: String,
    /// Registry id, `ID@TYPE` variant or file path.
    pub model: String,
    /// Device.
    pub device: String,
    /// Backend options as `--backend-opt` values (`backend:key=value`).
    pub backend_opts: Vec<String>,
    /// `--memory-limit` / `--cpu-quota` flags of a constrained run.
    pub limit_flags: Vec<String>,
}

impl RunArgs {
    /// The `edgebench` arguments (from `run`) for `backends` × `threads`, with `extra` flags.
    pub fn argv(&self, suite: Option<&str>, backends: &[&str], threads: &[usize], extra: &[&str]) -> Vec<String> {
        let threads: Vec<String> = threads.iter().map(usize::to_string).collect();
        let mut a: Vec<String> = vec![
            "run".into(),
            "--suite".into(),
            suite.unwrap_or(&self.suite).into(),
            "--model".into(),
            self.model.clone(),
            "--backend".into(),
            backends.join(","),
            "--device".into(),
            self.device.clone(),
            "--threads".into(),
            threads.join(","),
        ];
        for o in &self.backend_opts {
            a.extend(["--backend-opt".to_string(), o.clone()]);
        }
        a.extend(self.limit_flags.iter().cloned());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }
}

/// `argv` as a shell command line: `edgebench` and each argument quoted where it needs to be.
pub fn command_line(argv: &[String]) -> String {
    std::iter::once("edgebench".to_string())
        .chain(argv.iter().map(|a| crate::text::shell_word(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Candidate {
    /// Whether every check passed.
    pub fn feasible(&self) -> bool {
        self.checks.iter().all(|c| c.verdict == Verdict::Pass)
    }
}

/// One results file the recommendation read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// Path as given.
    pub path: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Its run id.
    pub run_id: String,
    /// The device that measured it.
    pub device: String,
}

/// A budget change that changes the pick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetChange {
    /// The flag and value, e.g. `--max-kld 0.35`.
    pub change: String,
    /// What would be picked then, or why none.
    pub then: String,
}

/// Something not measured that the answer needs, and the run that would measure it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Missing {
    /// What is unknown and for which candidates.
    pub what: String,
    /// The command that fills it (`None` when no command can, e.g. no energy meter on the device).
    pub command: Option<String>,
    /// Its arguments after `edgebench` (empty without a command), for `--run`.
    #[serde(skip)]
    pub argv: Vec<String>,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The files read.
    pub inputs: Vec<Input>,
    /// The device asking (this machine).
    pub here: String,
    /// The budgets.
    pub budget: Budget,
    /// The objective.
    pub objective: Objective,
    /// Only cells of this workload counted, when set.
    pub workload: Option<String>,
    /// Every candidate, ranked: feasible ones first (measured here before elsewhere, then by the objective), then
    /// the rejected ones.
    pub candidates: Vec<Candidate>,
    /// Indices (into `candidates`) of the feasible candidates no other feasible candidate beats on every figure.
    pub front: Vec<usize>,
    /// Index of the pick, if any candidate is feasible.
    pub pick: Option<usize>,
    /// Why the pick won and what it trades against the other front members.
    pub trade_offs: Vec<String>,
    /// Budget changes that would change the pick.
    pub changes: Vec<BudgetChange>,
    /// Unknowns and the runs that would measure them.
    pub missing: Vec<Missing>,
}
