//! Notes on decode against the memory ceiling (`edgebench run --memory-bandwidth`): the streaming read bandwidth
//! measured before the cells, and each decode cell's weight bandwidth (weight bytes a token × decode t/s) as a
//! share of it at the cell's thread count. CPU cells only: the probe reads host memory with CPU threads.

use edgebench_core::metrics;
use edgebench_core::results::{CellStatus, RunResults};

/// Bytes in a GiB.
const GIB: f64 = (1u64 << 30) as f64;

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
            .filter(|c| &c.key.model == id && c.key.device == "cpu" && matches!(c.status, CellStatus::Ok))
            .filter_map(|c| {
                let tps = c.median(metrics::DECODE_TPS.key)?;
                let ceiling = bw.iter().find(|b| b.threads == c.key.threads)?.gib_s;
                let gib_s = bytes as f64 * tps / GIB;
                Some(format!("{} {gib_s:.1} GiB/s = {:.0}%", c.key.label(), 100.0 * gib_s / ceiling))
            })
            .collect();
        if !shares.is_empty() {
            out.push(format!(
                "decode weight bandwidth of {id} ({:.1} MB of weights a token × decode t/s, share of the ceiling at \
                 the cell's threads): {}",
                bytes as f64 / 1e6,
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
    }
}
