//! Notes on decode against the memory ceiling (`edgebench run --memory-bandwidth`): the streaming read bandwidth
//! measured before the cells, and each decode cell's weight bandwidth (weight bytes a token × decode t/s) as a
//! share of it at the cell's thread count. CPU cells only: the probe reads host memory with CPU threads.

use edgebench_core::metrics;
use edgebench_core::results::{CellResult, CellStatus, RunResults};

/// Bytes in a GiB.
const GIB: f64 = (1u64 << 30) as f64;

/// The tidy rows' metric of a CPU decode cell's weight bandwidth as a share of the ceiling, in %.
pub const SHARE_METRIC: &str = "decode_bandwidth_pct";

/// Percent of the ceiling per decode token/s of `cell`: its model's weight bytes a token over the reading at its
/// thread count. `None` for a cell off the CPU, or without a reading or a byte count.
pub fn share_per_tps(r: &RunResults, cell: &CellResult) -> Option<f64> {
    if cell.key.device != "cpu" {
        return None;
    }
    let bytes = r.models.get(&cell.key.model)?.decode_weight_bytes?;
    let ceiling = r.device.memory_bandwidth.iter().find(|b| b.threads == cell.key.threads)?.gib_s;
    (ceiling > 0.0).then(|| 100.0 * bytes as f64 / GIB / ceiling)
}

/// The ceiling line, then one line per model whose measured decode cells ran at a thread count with a reading;
/// nothing for a run without readings.
pub fn notes(r: &RunResults) -> Vec<String> {
    let bw = &r.device.memory_bandwidth;
    if bw.is_empty() {
        return Vec::new();
    }
    let ceilings: Vec<String> = bw
        .iter()
        .map(|b| {
            let passes: Vec<String> = b.passes_gib_s.iter().map(|p| format!("{p:.1}")).collect();
            format!("t{} {:.1} GiB/s ({}; {})", b.threads, b.gib_s, passes.join(" then "), b.method)
        })
        .collect();
    let mut out = vec![format!(
        "memory bandwidth (streaming read of {} MiB, median of {} repetitions, the mean of a probe before the cells and \
         one after): {}",
        bw[0].buffer_mib,
        bw[0].repetitions,
        ceilings.join(", ")
    )];
    for (id, m) in &r.models {
        let Some(bytes) = m.decode_weight_bytes else { continue };
        let shares: Vec<String> = r
            .cells
            .iter()
            .filter(|c| &c.key.model == id && matches!(c.status, CellStatus::Ok))
            .filter_map(|c| {
                let tps = c.median(metrics::DECODE_TPS.key)?;
                let pct = share_per_tps(r, c)? * tps;
                Some(format!("{} {:.1} GiB/s = {pct:.0}%", c.key.label(), bytes as f64 * tps / GIB))
            })
            .collect();
        if !shares.is_empty() {
            out.push(format!(
                "decode weight bandwidth of {id} ({} of weights a token × decode t/s, share of the ceiling at the \
                 cell's threads): {}",
                edgebench_core::text::bytes_iec(bytes),
                shares.join("; ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgebench_core::results::{MemoryBandwidth, ModelInfo};

    #[test]
    fn decode_cells_get_their_share_of_the_ceiling_at_their_thread_count() {
        let mut r = crate::fixtures::run("r", "Test CPU");
        let model = r.cells[0].key.model.clone();
        let info = ModelInfo { id: model.clone(), decode_weight_bytes: Some(1 << 30), ..ModelInfo::default() };
        r.models.insert(model.clone(), info);
        assert!(notes(&r).is_empty(), "no readings, no notes");
        let threads = r.cells[0].key.threads;
        r.device.memory_bandwidth = vec![MemoryBandwidth {
            threads,
            gib_s: 2.0 * r.cells[0].median(metrics::DECODE_TPS.key).unwrap(),
            passes_gib_s: vec![1.0, 2.0],
            method: "prefetching, 2 MiB huge pages".into(),
            buffer_mib: 512,
            repetitions: 5,
        }];
        let n = notes(&r);
        assert!(n[0].contains(&format!("t{threads} ")) && n[0].contains("(1.0 then 2.0; prefetching"), "{n:?}");
        let line = n.iter().find(|l| l.starts_with(&format!("decode weight bandwidth of {model}"))).unwrap();
        assert!(line.contains(&format!("{} ", r.cells[0].key.label())) && line.contains("= 50%"), "{line}");
        // The tidy rows carry the same share, with the decode figures' statistics scaled alike.
        let rows = crate::rows::tidy_rows(std::slice::from_ref(&r));
        let share: Vec<_> = rows.iter().filter(|row| row.metric == SHARE_METRIC).collect();
        let decoded = r.cells.iter().filter(|c| c.median(metrics::DECODE_TPS.key).is_some()).count();
        assert_eq!(share.len(), decoded, "a row per CPU decode cell at the reading's threads: {share:?}");
        let backend = &r.cells[0].key.backend;
        let decode = rows.iter().find(|row| &row.backend == backend && row.metric == metrics::DECODE_TPS.key).unwrap();
        assert_eq!(&share[0].backend, backend);
        assert_eq!((share[0].unit.as_str(), share[0].better.as_str(), share[0].n), ("%", "higher", decode.n));
        assert!((share[0].median - 50.0).abs() < 1e-9, "{share:?}");
        assert!((share[0].p90 / share[0].median - decode.p90 / decode.median).abs() < 1e-12, "{share:?}");
    }
}
