//! Results as Markdown (a pull-request comment or a README table): one row per cell, one column per metric present,
//! then the devices the runs came from.

use edgebench_core::results::{CellStatus, RunResults};

use crate::table::cell_status_text;
use crate::text::markdown_safe as md;

/// The runs as one Markdown table plus a line per device.
pub fn markdown_report(runs: &[RunResults]) -> String {
    let keys = crate::html::metric_keys(runs);
    let mut out = String::from("| # | model | backend | device | thr | workload |");
    for k in &keys {
        out.push_str(&format!(" {} |", md(k)));
    }
    out.push_str(" status |\n|---|---|---|---|---:|---|");
    out.push_str(&"---:|".repeat(keys.len()));
    out.push_str("---|\n");
    for (i, r) in runs.iter().enumerate() {
        for c in &r.cells {
            let k = &c.key;
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |",
                i + 1,
                md(&k.model),
                md(&k.backend),
                md(&k.device),
                k.threads,
                md(&k.workload)
            ));
            for key in &keys {
                out.push_str(&format!(" {} |", crate::html::cell_value(c, key)));
            }
            let status = md(&cell_status_text(c));
            out.push_str(&format!(
                " {} |\n",
                if c.status == CellStatus::Ok { status } else { format!("**{status}**") }
            ));
        }
    }
    out.push('\n');
    for (i, r) in runs.iter().enumerate() {
        let d = &r.device;
        out.push_str(&format!(
            "{}. `{}`: {} ({} logical CPUs, {}), edgebench {} ({}), suite {}\n",
            i + 1,
            md(&r.run_id),
            md(&d.cpu_model),
            d.logical_cpus,
            md(&d.arch),
            md(&r.manifest.edgebench_version),
            md(&r.manifest.git_commit),
            md(&r.manifest.suite.name)
        ));
    }
    out.push_str("\nValues: median ±half-width of its 95% bootstrap interval over repetitions.\n");
    for (i, r) in runs.iter().enumerate() {
        for n in crate::energy::notes(r)
            .into_iter()
            .chain(crate::gpu_memory::notes(r))
            .chain(crate::bandwidth::notes(r))
            .chain(crate::drift::notes(r))
            .chain(crate::weights::notes(r))
        {
            // Notes keep their code spans; what came from files is made inert otherwise.
            let n = crate::text::terminal_safe(&n).replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;");
            out.push_str(&format!("\n- run {}: {n}", i + 1));
        }
    }
    out.push('\n');
    if let Some(stats) = crate::drift::markdown_stats(runs) {
        out.push_str("\n### Accuracy drift against the reference (llama-perplexity `--kl-divergence` statistics)\n\n");
        out.push_str(&stats);
    }
    out
}
