//! One module per subcommand; `dispatch` maps the parsed command line to them.

mod backend_opts;
mod cell;
mod compare;
mod export;
mod fleet;
mod info;
mod leaderboard;
mod models;
mod recommend;
mod report;
mod run;

use std::process::ExitCode;

use crate::cli::{Cli, Command, ExportCommand, FleetCommand, LeaderboardCommand, ModelsCommand};

/// Runs the parsed command and returns its exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Models(ModelsCommand::List) => models::list(),
        Command::Models(ModelsCommand::Fetch { id }) => models::fetch(id.as_deref()),
        Command::Models(ModelsCommand::Inspect { file }) => models::inspect(&file),
        Command::Models(ModelsCommand::Quantize { to, src, out }) => models::quantize(&to, &src, &out),
        Command::Device { format } => info::device(format),
        Command::Backends(a) => info::backends(a.ort_probe.as_deref()),
        Command::Export(ExportCommand::Onnx { model, out, accuracy_level, graph, untied_head, fp16_safe_norm }) => {
            export::onnx(model.as_deref(), &out, accuracy_level, &graph, untied_head, fp16_safe_norm)
        }
        Command::Report(a) => report::report(&a),
        Command::Compare(a) => compare::compare(std::slice::from_ref(&a.base), &a.current, &a.opts, false),
        Command::Gate(a) => compare::compare(&a.baseline, &a.current, &a.opts, true),
        Command::Recommend(a) => recommend::recommend(&a),
        Command::Fleet(FleetCommand::Plan { fleet, out }) => fleet::plan(&fleet, &out),
        Command::Fleet(FleetCommand::Collect { dir }) => fleet::collect(&dir),
        Command::Keygen { key } => leaderboard::keygen(&key),
        Command::Submit(a) => leaderboard::submit(&a),
        Command::Leaderboard(LeaderboardCommand::Verify { dir, record, json }) => {
            leaderboard::verify(&dir, record, json.as_deref())
        }
        Command::Leaderboard(LeaderboardCommand::Build { dir, out }) => leaderboard::build(&dir, &out),
        Command::Leaderboard(LeaderboardCommand::Sample { dir, submission, beacon }) => {
            leaderboard::sample(&dir, &submission, &beacon)
        }
        Command::Cell => cell::cell(),
    }
}

/// Root of the sysfs tree the energy and thermal probes read: `/`, or `EDGEBENCH_SYSFS_ROOT` (a copied or fake
/// tree, for tests and for inspecting another machine's sysfs snapshot).
fn sysfs_root() -> String {
    std::env::var("EDGEBENCH_SYSFS_ROOT").unwrap_or_else(|_| "/".into())
}

/// Whether `a` and `b` are one file (the same path, a symlink or a hard link): both exist with the same device
/// and inode.
pub(crate) fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

/// Refuses an output that is one of the inputs (`--out` equal to the suite file, a results file rendered over
/// itself): an output never overwrites an input.
pub(crate) fn refuse_input_as_output(
    out_flag: &str,
    out: &std::path::Path,
    inputs: &[(String, std::path::PathBuf)],
) -> anyhow::Result<()> {
    if let Some((flag, p)) = inputs.iter().find(|(_, p)| same_file(out, p)) {
        anyhow::bail!(
            "{out_flag} {} is the same file as {flag} {}; writing it would destroy that input: choose another {out_flag}",
            out.display(),
            p.display()
        );
    }
    Ok(())
}
