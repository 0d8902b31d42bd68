//! Command-line interface (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use edgebench_core::drift::DriftLevel;

/// Benchmark quantized language models across inference backends on edge devices.
#[derive(Debug, Parser)]
#[command(name = "edgebench", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a suite on every selected backend and print the summary table (defaults: quick suite, default model,
    /// every compiled-in backend, threads = free CPUs).
    Run(Box<RunArgs>),
    /// Models: list the registry and cache, fetch, inspect a GGUF file.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Print this machine's fingerprint.
    Device {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List backends, whether each is compiled in, and the devices it can use here (for ort: the execution
    /// providers of the ONNX Runtime library, then each accelerator library — OpenVINO's build, QNN's plugin —
    /// with its devices present or absent and why; those libraries are fetched, SHA-256 pinned, if missing).
    Backends(BackendsArgs),
    /// Export a model to another format the backends read.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Render results files (one or several: devices, commits) as a table, Markdown, HTML with charts, CSV or Parquet.
    Report(ReportArgs),
    /// Compare two results files metric by metric: change with a 95% confidence interval and a verdict.
    Compare(CompareArgs),
    /// Gate CI on regressions: like compare, but exits 1 when any metric regressed (0 pass, 2 error).
    Gate(GateArgs),
    /// What to ship on this device: the measured candidates (model variant × backend × threads) of results files
    /// checked against a budget on their unfavourable bounds, the Pareto front, the pick, what it trades and what
    /// would change it (exit 0 with a pick, 1 when no candidate meets the budget, 2 on error).
    Recommend(RecommendArgs),
    /// Device fleets through Ansible: plan the inventory from a fleet file, collect what came back.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Make an ed25519 key pair for signing submissions: KEY (private, PKCS#8 PEM, mode 0600) and KEY.pub (public,
    /// SPKI PEM, what a leaderboard's keys/keys.toml lists). OpenSSL's `genpkey -algorithm ed25519` keys work too.
    Keygen {
        /// Where to write the private key (KEY.pub beside it); never overwritten.
        key: PathBuf,
    },
    /// Sign a results file into a leaderboard checkout: submissions/<device>/<run>.json beside its DSSE envelope
    /// (an in-toto statement naming the file's SHA-256, this binary's SHA-256 and version, and the signer).
    Submit(SubmitArgs),
    /// Leaderboards: verify every submission's trust tier, build the static site, draw a submission's cells for a
    /// maintainer to re-run.
    #[command(subcommand)]
    Leaderboard(LeaderboardCommand),
    /// Internal: run one cell (spec as JSON on stdin), speaking JSON lines on stdout.
    #[command(hide = true)]
    Cell,
}

/// Options of `edgebench submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The results file (`edgebench run --out`).
    pub results: PathBuf,
    /// The private key to sign with.
    #[arg(long)]
    pub key: PathBuf,
    /// Your name, as the leaderboard's keys/keys.toml lists your key (default: the key file's name without its
    /// extension, `alice` for `alice.key`).
    #[arg(long)]
    pub signer: Option<String>,
    /// The leaderboard checkout to write into.
    #[arg(long, default_value = ".")]
    pub leaderboard: PathBuf,
    /// Device folder name (default: made from the CPU model and CPU count).
    #[arg(long = "device-name")]
    pub device_name: Option<String>,
    /// A maintainer's re-run: the submission it reproduces (submissions/<device>/<run>.json) ...
    #[arg(long, requires = "beacon")]
    pub reproduces: Option<String>,
    /// ... and the beacon that drew its cells (`edgebench leaderboard sample`).
    #[arg(long, requires = "reproduces")]
    pub beacon: Option<String>,
}

/// `edgebench leaderboard …`.
#[derive(Debug, Subcommand)]
pub enum LeaderboardCommand {
    /// Check every submission of DIR and print its tier with the reasons it is not higher (exit 1 when a submission
    /// or reproduction is rejected, or a submission no longer reaches the tier tiers.json records; 2 on error).
    Verify {
        /// The leaderboard.
        dir: PathBuf,
        /// Write the tiers reached into DIR/tiers.json (what the site publishes; commit it).
        #[arg(long)]
        record: bool,
        /// Also write the whole verification as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Verify DIR and write the static site (self-contained, deterministic) into --out.
    Build {
        /// The leaderboard.
        dir: PathBuf,
        /// The site folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// The cells of a submission a maintainer must re-run for tier 3, drawn by the submission's SHA-256 and a beacon
    /// published after it, with the commands that re-run them.
    Sample {
        /// The leaderboard.
        dir: PathBuf,
        /// The submission (submissions/<device>/<run>.json).
        submission: String,
        /// A value published after the submission (e.g. the leaderboard's next commit id).
        #[arg(long)]
        beacon: String,
    },
}

/// `edgebench fleet …`.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Turn FLEET.toml into DIR/inventory.json (an Ansible inventory with each device's binary, models, suite and
    /// command) and DIR/plan.json, then print the ansible-playbook command that runs it.
    Plan {
        /// The fleet file.
        fleet: PathBuf,
        /// The fleet folder (results and statuses come back into it).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check the results the playbook fetched into DIR against the plan (valid results, device fingerprints as the
    /// fleet file says) and write DIR/fleet.json, which `report` and `gate` read (exit 2 when a device failed).
    Collect {
        /// The fleet folder.
        dir: PathBuf,
    },
}

/// Options of `edgebench recommend`.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// Results files (`edgebench run --out`) or fleet indexes (`fleet.json`), from this device or others.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Memory available, MiB: peak RSS plus the KV cache at --ctx must fit.
    #[arg(long, value_name = "MIB")]
    pub ram_mib: Option<f64>,
    /// Least decode speed, t/s (checked on the lower 95% limit, derated where a sustained run throttled).
    #[arg(long, value_name = "TPS")]
    pub min_decode_tps: Option<f64>,
    /// Longest time to first token, ms (upper limit, over the workloads counted).
    #[arg(long, value_name = "MS")]
    pub max_ttft_ms: Option<f64>,
    /// Largest accuracy drift: mean KL divergence against the reference, plus its standard error.
    #[arg(long, value_name = "NATS")]
    pub max_kld: Option<f64>,
    /// Largest decode energy per token, J (upper limit; unknown without an energy meter).
    #[arg(long, value_name = "J")]
    pub max_j_per_token: Option<f64>,
    /// Context length the KV cache must hold on top of the measured peak, tokens.
    #[arg(long, value_name = "TOKENS")]
    pub ctx: Option<u64>,
    /// What the pick optimizes among the feasible candidates.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Speed)]
    pub objective: ObjectiveArg,
    /// Count only this workload's cells (default: every workload, each figure at its worst).
    #[arg(long)]
    pub workload: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RecommendFormat::Table)]
    pub format: RecommendFormat,
    /// Output file (default: stdout; recommend.html for html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print only the runs that would measure what is unknown (drift, throttling, missing workloads).
    #[arg(long)]
    pub measure_missing: bool,
    /// With --measure-missing: make those runs (results next to --out, or in results/), then answer again with
    /// them added.
    #[arg(long, requires = "measure_missing")]
    pub run: bool,
}

/// `--objective` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ObjectiveArg {
    /// Highest decode t/s.
    Speed,
    /// Least drift.
    Quality,
    /// Least memory.
    Memory,
    /// Least decode energy per token.
    Energy,
}

/// Formats of `edgebench recommend`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RecommendFormat {
    /// Terminal text.
    Table,
    /// Markdown.
    Markdown,
    /// JSON (every candidate, each input file's SHA-256 and cell keys).
    Json,
    /// Self-contained HTML with the chart.
    Html,
}

/// Options of `edgebench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results files (`edgebench run --out`) or fleet indexes (`fleet.json`), combined in one report.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RenderFormat::Table)]
    pub format: RenderFormat,
    /// Output file (default: stdout for table and markdown, report.html / report.csv / report.parquet otherwise).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Table format: every column on every row and each cell's whole status (default: fits 120 columns, details
    /// once under the table).
    #[arg(long)]
    pub wide: bool,
}

/// Formats of `edgebench report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    /// Terminal table per run.
    Table,
    /// One Markdown table.
    Markdown,
    /// Self-contained HTML with SVG charts.
    Html,
    /// Tidy CSV, one row per cell × metric (feature `polars`).
    Csv,
    /// Tidy Parquet, one row per cell × metric (feature `polars`).
    Parquet,
}

/// Options shared by `compare` and `gate`.
#[derive(Debug, Args)]
pub struct ComparisonOptions {
    /// Per-metric thresholds TOML (default: the shipped ci/thresholds.toml).
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// Compare even when the runs differ in model file, device, suite or build profile (the report lists each).
    #[arg(long)]
    pub allow_mismatch: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
}

/// Options of `edgebench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Base results file.
    pub base: PathBuf,
    /// Current results file.
    pub current: PathBuf,
    /// Shared options.
    #[command(flatten)]
    pub opts: ComparisonOptions,
}

/// Options of `edgebench gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Baseline results file; repeat it to pool several runs of the same settings (their drift then counts as
    /// noise).
    #[arg(long, required = true)]
    pub baseline: Vec<PathBuf>,
    /// Current results file.
    #[arg(long)]
    pub current: PathBuf,
    /// Shared options.
    #[command(flatten)]
    pub opts: ComparisonOptions,
}

/// Formats of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Terminal table.
    Table,
    /// Markdown, for a pull-request comment.
    Markdown,
    /// JSON on stdout.
    Json,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable table.
    Table,
    /// JSON on stdout.
    Json,
}

/// Options of `edgebench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Built-in suite name (quick, standard, sustained, accuracy) or a suite TOML file.
    #[arg(long, default_value = "quick")]
    pub suite: String,
    /// Backends, comma-separated (default: every compiled-in backend except mock).
    #[arg(long, value_delimiter = ',')]
    pub backend: Vec<String>,
    /// Registry model id or a local llama-architecture GGUF file, optionally `@q8_0` / `@q4_0` / `@q4_1` / `@f16` for
    /// a copy requantized by edgebench (made once, cached); repeatable (default: the suite's models, else the
    /// registry's default).
    #[arg(long)]
    pub model: Vec<String>,
    /// Thread counts, comma-separated (default: CPUs not busy with other work).
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Devices, comma-separated: cpu, cuda[:N], metal; for the ort backend also openvino[:CPU|GPU|NPU] (OpenVINO's
    /// build of ONNX Runtime), qnn[:htp|gpu|cpu] (the QNN provider plugin), coreml, directml[:N].
    #[arg(long, value_delimiter = ',', default_value = "cpu")]
    pub device: Vec<String>,
    /// Override the suite's measured repetitions.
    #[arg(long)]
    pub repetitions: Option<usize>,
    /// Override the suite's warm-up repetitions.
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Backend option KEY=VALUE for every backend of the run that has KEY, or BACKEND:KEY=VALUE for one;
    /// repeatable (e.g. candle:requantize=q8_0; recorded in the results). Unknown keys are refused before measuring.
    #[arg(long = "backend-opt", value_name = "[BACKEND:]KEY=VALUE")]
    pub backend_opt: Vec<String>,
    /// Per-cell time limit in seconds, at most a week (default: the suite's).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Results file (default: results/<run id>.json). An existing one is refused unless --resume or --force.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the results file --out: check it was made with these settings, keep its cells, measure the rest.
    #[arg(long, requires = "out", conflicts_with = "force")]
    pub resume: bool,
    /// Replace the results file --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Table format: every column on every row and each cell's whole status (default: fits 120 columns, details
    /// once under the table).
    #[arg(long)]
    pub wide: bool,
    /// External energy meter: a shell command that prints cumulative joules (`12.5 J`) or power samples (`4.2 W`),
    /// one per line, until killed (USB meters, lab supplies).
    #[arg(long, value_name = "CMD")]
    pub energy_cmd: Option<String>,
    /// Meters whose sum gives the headline J/token, comma-separated (default: chosen per machine; names in
    /// `edgebench device`).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub energy_meter: Vec<String>,
    /// Idle baseline before each cell, seconds, taken only when a meter is readable (0: none, and no net figures).
    #[arg(long, default_value_t = edgebench_probes::energy::DEFAULT_IDLE_S)]
    pub idle_s: f64,
    /// Repeat each cell until its measured repetitions span this many seconds (default: the suite's; the
    /// `sustained` suite runs 300).
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Accuracy drift check of every cell against the reference: off, short or full (default: the suite's; quick,
    /// standard and sustained run short, accuracy runs full).
    #[arg(long, value_parser = DriftLevel::parse)]
    pub drift: Option<DriftLevel>,
    /// Evaluation text for the drift check (UTF-8), cut into --eval-ctx token chunks whose second halves are scored,
    /// as llama-perplexity does (default: the built-in chat prompts continued by the reference).
    #[arg(long, value_name = "FILE")]
    pub eval_text: Option<PathBuf>,
    /// Tokens per --eval-text chunk.
    #[arg(long, default_value_t = edgebench_drift::DEFAULT_EVAL_CTX)]
    pub eval_ctx: usize,
    /// At most this many --eval-text chunks in a full check (default: every whole chunk; a short check scores one).
    #[arg(long)]
    pub eval_chunks: Option<usize>,
    /// Run each cell's process in a control group of its own with this memory limit (anonymous memory and page
    /// cache, as the kernel charges them; e.g. 1GiB, 96MiB): a device with less memory than this one. Recorded in
    /// the results and the device fingerprint; refused where cgroups are not writable.
    #[arg(long, value_name = "SIZE", value_parser = edgebench_core::text::parse_bytes)]
    pub memory_limit: Option<u64>,
    /// Run each cell's process under this CPU quota, in CPUs (e.g. 1.5: one and a half CPUs' time per 100 ms
    /// period), in a control group of its own; refused where cgroups are not writable. The default thread count
    /// is then at most the quota rounded up.
    #[arg(long, value_name = "CPUS", value_parser = parse_cpu_quota)]
    pub cpu_quota: Option<f64>,
    /// Measure this machine's streaming read bandwidth at each thread count of the CPU cells, before and after the
    /// cells (a few seconds; a 512 MiB buffer, or a quarter of the available memory when less), and report each
    /// CPU decode cell's weight bandwidth against it: weight bytes a token × decode t/s, and its share of the
    /// ceiling. Not with --memory-limit or --cpu-quota (the probe would read the unconstrained machine).
    #[arg(long, conflicts_with_all = ["memory_limit", "cpu_quota"])]
    pub memory_bandwidth: bool,
    /// Backend that computes the reference log-probabilities.
    #[arg(long, default_value = "candle")]
    pub reference_backend: String,
    /// Reference backend option KEY=VALUE, repeatable (default for candle: requantize=f32, every weight
    /// dequantized to f32).
    #[arg(long = "reference-opt", value_name = "KEY=VALUE")]
    pub reference_opt: Vec<String>,
    /// Model file or registry id the reference runs, e.g. a higher-precision file of the same model (default: each
    /// --model itself; for an `ID@TYPE` variant, the model it was requantized from).
    #[arg(long)]
    pub reference_model: Option<String>,
}

/// `edgebench export …`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write the ONNX graph of a GGUF model of any architecture edgebench reads (KV cache in and out, 4-bit and
    /// 8-bit block types as com.microsoft MatMulNBits where exact, other types dequantized to f32 and labelled
    /// converted) as DIR/model.onnx, with DIR/export.json describing
    /// it: how each type is carried, conversions, and the weight fingerprints of the file and of the GGUF.
    Onnx {
        /// Registry id, `ID@TYPE` variant or GGUF file (default: the default model).
        #[arg(long)]
        model: Option<String>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// `accuracy_level` of the MatMulNBits nodes: 0 unset, 1 f32, 4 int8 activations (ONNX Runtime only;
        /// 4, the ort backend's default, also carries Q8_0 products as 8-bit MatMulNBits).
        #[arg(long, default_value_t = 4)]
        accuracy_level: u8,
        /// Which graph: `fused` (ONNX Runtime's contrib operators, what the ort backend runs by default) or
        /// `primitive` (standard operators, what tract runs).
        #[arg(long, default_value = "fused", value_parser = ["fused", "primitive"])]
        graph: String,
        /// A tied f32 output product reads its own copy of the embedding table (what the tract backend runs:
        /// tract re-packs a table two nodes share at every call).
        #[arg(long)]
        untied_head: bool,
        /// RMS norms scaled by 1/256 before squaring, so they stay within fp16's range (what the ort backend runs on
        /// QNN); primitive graph only.
        #[arg(long)]
        fp16_safe_norm: bool,
    },
}

/// `edgebench models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Registry entries and whether each is cached.
    List,
    /// Download, verify and cache a registry model (default: the default model).
    Fetch {
        /// Registry id.
        id: Option<String>,
    },
    /// Write a copy of a GGUF file with every 2-D weight re-encoded to one type (norms stay F32); the copy records
    /// the source's type and SHA-256. Readable by llama.cpp and candle. `--model ID@q8_0` does the same on the fly.
    Quantize {
        /// Target type: Q8_0, Q6_K, Q5_K, Q5_0, Q5_1, Q4_K, Q4_0, Q4_1, F16 or F32 (a K-quant falls back, as llama.cpp
        /// does, to Q5_0 / Q5_1 / Q8_0 for rows that are not whole super-blocks of 256).
        #[arg(long)]
        to: String,
        /// Source: a GGUF file or a registry id.
        src: String,
        /// Output file.
        out: PathBuf,
    },
    /// Architecture, parameter count, tensor types and metadata of a GGUF file.
    Inspect {
        /// The file (or a registry id that is cached).
        file: String,
    },
}

fn parse_cpu_quota(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(q) if (0.01..=4096.0).contains(&q) => Ok(q),
        _ => Err(format!("`{s}` is not a CPU quota (a number of CPUs from 0.01, e.g. 1.5)")),
    }
}

/// `edgebench backends`.
#[derive(clap::Args, Debug)]
pub struct BackendsArgs {
    /// Internal: probe one accelerator library's devices in this process (`openvino` or `qnn`).
    #[arg(long, hide = true)]
    pub ort_probe: Option<String>,
}
