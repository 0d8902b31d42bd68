//! The "same model" line of every report: for each backend, whether the weights it ran (their fingerprint, the
//! SHA-256 of every dequantized value) are identical to the model file's, and what it converted.

use std::collections::BTreeMap;

use edgebench_core::results::{CellStatus, RunResults};

/// One note per verdict, e.g. `weights: identical to source (wfp1:6c975fb4b274…): native, ort, tract`, and one per
/// backend that converted its weights' representation. Nothing for results without fingerprints.
pub fn notes(r: &RunResults) -> Vec<String> {
    let mut out = verdicts(r);
    let mut converted: BTreeMap<String, String> = BTreeMap::new();
    for c in &r.cells {
        if let Some(conv) = c.backend.as_ref().and_then(|b| b.converted.as_ref()) {
            converted.entry(c.key.backend.clone()).or_insert_with(|| conv.clone());
        }
    }
    out.extend(converted.into_iter().map(|(b, how)| format!("converted by {b}: {how}")));
    out
}

/// The verdict notes of [`notes`] alone; for a run in which no cell finished, one line saying so.
pub fn verdicts(r: &RunResults) -> Vec<String> {
    let mut verdicts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &r.cells {
        let Some(b) = &c.backend else { continue };
        if let Some(w) = &b.weights {
            let short = |f: &str| f.chars().take(17).collect::<String>();
            let key = if w.fingerprint == w.source {
                format!("identical to source ({}…)", short(&w.source))
            } else {
                format!("DIFFER from source ({}… vs the file's {}…)", short(&w.fingerprint), short(&w.source))
            };
            let names = verdicts.entry(key).or_default();
            if !names.contains(&c.key.backend) {
                names.push(c.key.backend.clone());
            }
        }
    }
    if !r.cells.is_empty() && r.cells.iter().all(|c| c.status != CellStatus::Ok) {
        return vec!["weights: not checked: no cell ran to the end of its workload".into()];
    }
    verdicts
        .into_iter()
        .map(|(v, names)| {
            format!("weights (fingerprint of the dequantized values each backend ran): {v}: {}", names.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgebench_core::WeightsCheck;

    #[test]
    fn groups_backends_by_verdict_and_lists_conversions() {
        let mut r = crate::fixtures::run("r1", "AMD EPYC");
        assert!(notes(&r).is_empty(), "fixtures predate fingerprints");
        let check = |fp: &str| WeightsCheck { fingerprint: fp.into(), source: "wfp1:aaaa".into(), how: "x".into() };
        let n = r.cells.len();
        for (i, c) in r.cells.iter_mut().enumerate() {
            let b = c.backend.get_or_insert_with(Default::default);
            b.weights = Some(check(if i + 1 == n { "wfp1:bbbb" } else { "wfp1:aaaa" }));
            if i == 0 {
                b.converted = Some("Q8_0 → f32".into());
            }
        }
        let got = notes(&r).join("\n");
        assert!(got.contains("identical to source (wfp1:aaaa…)"), "{got}");
        assert!(got.contains("DIFFER from source (wfp1:bbbb… vs the file's wfp1:aaaa…)"), "{got}");
        assert!(got.contains("Q8_0 → f32"), "{got}");
    }
}
