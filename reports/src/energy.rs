//! Lines that explain energy, thermal and sustained figures under a table: why energy is missing (the meters'
//! own reasons), which meters the J/token figures come from, throttling, and start-versus-end of sustained cells.

use edgebench_core::metrics;
use edgebench_core::results::{CellResult, CellStatus, RunResults};

use crate::table::cell_label as label;

/// Notes for one run, each a plain sentence (no markup).
pub fn notes(r: &RunResults) -> Vec<String> {
    let mut out = Vec::new();
    let with_energy: Vec<&CellResult> =
        r.cells.iter().filter(|c| c.metrics.contains_key(metrics::DECODE_J_PER_TOKEN.key)).collect();
    let mut sources: Vec<String> = with_energy
        .iter()
        .filter_map(|c| c.energy.as_ref())
        .map(|e| format!("{} ({})", e.primary.join(" + "), e.note))
        .collect();
    sources.dedup();
    for s in sources {
        out.push(format!("energy: measured with {s}; J/token are gross, net figures subtract the idle baseline"));
    }
    if with_energy.is_empty() {
        let mut why: Vec<&str> = r.cells.iter().filter_map(|c| c.energy.as_ref()).map(|e| e.note.as_str()).collect();
        why.dedup();
        let finished = r.cells.iter().filter(|c| c.status == CellStatus::Ok).count();
        match why.first() {
            Some(w) => out.push(format!("energy: not measured, {w}")),
            None if r.cells.is_empty() => out.push("energy: not measured: no cell ran".into()),
            // A cell that ends before its meters start (skipped, crashed, timed out) carries no energy record.
            None if finished == 0 => out.push(format!(
                "energy: not measured: no cell got as far as reading its meters ({})",
                crate::table::outcome_counts(r)
            )),
            None => out.push("energy: not measured (these results predate energy meters)".into()),
        }
    }
    if let Some(cost) = r.cells.iter().filter_map(|c| c.energy.as_ref()).map(|e| &e.sampler).find(|s| s.samples > 0) {
        out.push(format!("sampler: every {:.0} ms, {:.2}% of one core", cost.interval_ms, cost.core_share() * 100.0));
    }
    for c in &r.cells {
        if let Some(t) = c.thermal.as_ref().and_then(|t| t.throttled.as_ref()) {
            out.push(format!("throttled: {}: {t}", label(c)));
        }
        if let Some(s) = &c.sustained {
            let tps = match (s.start.decode_tps, s.end.decode_tps, s.decode_tps_ratio) {
                (Some(a), Some(b), Some(x)) => format!("decode {a:.1} → {b:.1} t/s ({x:.3}×)"),
                _ => "decode speed not measured".into(),
            };
            let w = match (s.start.decode_w, s.end.decode_w, s.decode_w_ratio) {
                (Some(a), Some(b), Some(x)) => format!("power {a:.2} → {b:.2} W ({x:.3}×)"),
                _ => "power not measured".into(),
            };
            let mhz = c
                .thermal
                .as_ref()
                .and_then(|t| t.cpu_mhz.as_ref())
                .map(|f| format!(", CPU {:.0} → {:.0} MHz", f.start, f.end))
                .unwrap_or_default();
            out.push(format!("sustained: {} over {:.0} s: {tps}, {w}{mhz}", label(c), s.duration_s));
        }
    }
    out
}
