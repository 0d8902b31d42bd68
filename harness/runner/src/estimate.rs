//! How long a planned run will take: each cell at the wall time the same cell took in earlier results from this
//! device, and, once cells of this run have finished, the others at their mean.

use std::path::{Path, PathBuf};

use edgebench_core::results::RunResults;

use crate::protocol::CellSpec;

/// Results files larger than this are not read for an estimate (a results file of a run is a few MB).
pub const MAX_EARLIER_FILE_BYTES: u64 = 64 << 20;
/// At most this many of the newest results files are read for an estimate.
pub const MAX_EARLIER_FILES: usize = 8;

/// The newest results files in `dir` (at most [`MAX_EARLIER_FILES`], each under [`MAX_EARLIER_FILE_BYTES`]),
/// newest first; unreadable or foreign files are passed over, since an estimate is only a courtesy.
pub fn earlier_results(dir: &Path, except: &Path) -> Vec<(PathBuf, RunResults)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json") && e.path() != except)
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let modified = m.modified().ok()?;
            (m.is_file() && m.len() <= MAX_EARLIER_FILE_BYTES).then(|| (modified, e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files
        .into_iter()
        .take(MAX_EARLIER_FILES)
        .filter_map(|(_, p)| Some((p.clone(), crate::results_io::read(&p).ok()?)))
        .collect()
}

/// Each planned cell's wall seconds in the newest of `earlier` run on a CPU named `cpu_model`, `None` when no
/// earlier result has that cell.
pub fn prior_wall_s(cells: &[CellSpec], cpu_model: &str, earlier: &[(PathBuf, RunResults)]) -> Vec<Option<f64>> {
    cells
        .iter()
        .map(|spec| {
            earlier
                .iter()
                .filter(|(_, r)| r.device.cpu_model == cpu_model)
                .find_map(|(_, r)| r.cells.iter().find(|c| c.key == spec.key && c.wall_s > 0.0).map(|c| c.wall_s))
        })
        .collect()
}

/// Seconds left for the cells from `next` on: each at its prior time, or at the mean wall time of the cells that
/// finished in this run (`done_wall_s`), or at the mean of the priors; `None` when nothing is known.
pub fn remaining_s(prior: &[Option<f64>], next: usize, done_wall_s: &[f64]) -> Option<f64> {
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let known: Vec<f64> = prior.iter().flatten().copied().collect();
    let fallback = mean(done_wall_s).or_else(|| mean(&known));
    prior.iter().skip(next).map(|p| p.or(fallback)).sum()
}

/// `1 min 40 s`, `35 s`, `2 h 05 min`.
pub fn human(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_uses_priors_then_this_runs_mean() {
        assert_eq!(remaining_s(&[Some(10.0), None, Some(30.0)], 0, &[]), Some(60.0), "unknown at the priors' mean");
        assert_eq!(remaining_s(&[Some(10.0), None, Some(30.0)], 1, &[40.0]), Some(70.0), "unknown at this run's mean");
        assert_eq!(remaining_s(&[None, None], 0, &[]), None);
        assert_eq!(remaining_s(&[None, None], 1, &[12.0]), Some(12.0));
        assert_eq!(remaining_s(&[Some(1.0)], 1, &[]), Some(0.0));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(35.4), "35 s");
        assert_eq!(human(100.0), "1 min 40 s");
        assert_eq!(human(7500.0), "2 h 05 min");
    }
}
