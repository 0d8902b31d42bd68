//! From checked candidates to an answer: ranking (feasible first, measured here before elsewhere, then the
//! objective), the Pareto front of the feasible ones, the pick (candidates whose objective figures are
//! indistinguishable — 95% intervals overlapping, or within 1% where a figure has no interval — tie, and the tie is
//! decided by the other figures in a fixed order), what the pick trades against its neighbours, the budget changes
//! that would change it, and the runs that would measure what is unknown.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use edgebench_core::recommend::{
    command_line, BudgetChange, Candidate, Evidence, Missing, Objective, Recommendation, Verdict,
};

use super::sig;

/// Two objective figures without intervals within this relative distance are a tie, decided by the other figures.
pub const TIE: f64 = 0.01;

/// A candidate's figure for `o` as measured.
fn bound(c: &Candidate, o: Objective) -> Option<&edgebench_core::recommend::Bound> {
    match o {
        Objective::Speed => c.decode_tps.as_ref(),
        Objective::Quality => c.kld.as_ref(),
        Objective::Memory => c.ram_mib.as_ref(),
        Objective::Energy => c.j_per_token.as_ref(),
    }
}

/// Whether `a` and `b` cannot be told apart on `o`: their intervals overlap, or, where one has none, their figures
/// are within [`TIE`].
fn tied(a: &Candidate, b: &Candidate, o: Objective) -> bool {
    match (bound(a, o), bound(b, o)) {
        (Some(x), Some(y)) => match (x.interval, y.interval) {
            (Some([a0, a1]), Some([b0, b1])) => a0 <= b1 && b0 <= a1,
            _ => near(x.value, y.value),
        },
        _ => false,
    }
}

/// A candidate's figure for `o`, oriented so that larger is better; `None` when unknown.
fn score(c: &Candidate, o: Objective) -> Option<f64> {
    match o {
        Objective::Speed => c.decode_tps.as_ref().map(|b| b.value),
        Objective::Quality => c.kld.as_ref().map(|b| -b.value),
        Objective::Memory => c.ram_mib.as_ref().map(|b| -b.value),
        Objective::Energy => c.j_per_token.as_ref().map(|b| -b.value),
    }
}

/// The objectives in the order that breaks ties: `o` first, then the others.
fn order(o: Objective) -> Vec<Objective> {
    let mut v = vec![o];
    v.extend(
        [Objective::Speed, Objective::Quality, Objective::Memory, Objective::Energy].into_iter().filter(|x| *x != o),
    );
    v
}

/// Better first: known before unknown, then larger score.
fn cmp_score(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// A total order: feasible first; measured here first; then each objective's exact score; then the label.
fn rank(a: &Candidate, b: &Candidate, o: Objective) -> Ordering {
    b.feasible()
        .cmp(&a.feasible())
        .then_with(|| (a.evidence != Evidence::Here).cmp(&(b.evidence != Evidence::Here)))
        .then_with(|| {
            order(o)
                .into_iter()
                .map(|x| cmp_score(score(a, x), score(b, x)))
                .find(|c| c.is_ne())
                .unwrap_or(Ordering::Equal)
        })
        .then_with(|| {
            let failing = |c: &Candidate| c.checks.iter().filter(|k| k.verdict != Verdict::Pass).count();
            failing(a).cmp(&failing(b))
        })
        .then_with(|| a.label.cmp(&b.label))
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= TIE * a.abs().max(b.abs())
}

/// Whether `a` dominates `b` on decode (higher), drift, memory, TTFT and energy (lower); an unknown figure is the
/// worst value, and a figure unknown for both is equal.
fn dominates(a: &Candidate, b: &Candidate) -> bool {
    let dims = [
        (a.decode_tps.as_ref().map(|x| x.value), b.decode_tps.as_ref().map(|x| x.value)),
        (a.kld.as_ref().map(|x| -x.value), b.kld.as_ref().map(|x| -x.value)),
        (a.ram_mib.as_ref().map(|x| -x.value), b.ram_mib.as_ref().map(|x| -x.value)),
        (a.ttft_ms.as_ref().map(|x| -x.value), b.ttft_ms.as_ref().map(|x| -x.value)),
        (a.j_per_token.as_ref().map(|x| -x.value), b.j_per_token.as_ref().map(|x| -x.value)),
    ];
    let v = |x: Option<f64>| x.unwrap_or(f64::NEG_INFINITY);
    dims.iter().all(|(x, y)| v(*x) >= v(*y)) && dims.iter().any(|(x, y)| v(*x) > v(*y))
}

/// The pick's figures against another candidate's, e.g. `36% slower decode, 8.0× less drift, 12% more memory`.
pub(crate) fn versus(p: &Candidate, q: &Candidate) -> String {
    let mut parts = Vec::new();
    if let (Some(a), Some(b)) = (&p.decode_tps, &q.decode_tps) {
        let r = a.value / b.value;
        parts.push(if r >= 1.0 {
            if r >= 2.0 {
                format!("{r:.1}× faster decode")
            } else {
                format!("{:.0}% faster decode", 100.0 * (r - 1.0))
            }
        } else {
            format!("{:.0}% slower decode", 100.0 * (1.0 - r))
        });
    }
    match (&p.kld, &q.kld) {
        (Some(a), Some(b)) if a.value > 0.0 && b.value > 0.0 => {
            let r = b.value / a.value;
            parts.push(match r {
                r if !(0.01..=100.0).contains(&r) => format!("KLD {} against {}", sig(a.value), sig(b.value)),
                r if r >= 2.0 => format!("{r:.1}× less drift"),
                r if r >= 1.0 => format!("{:.0}% less drift", 100.0 * (1.0 - 1.0 / r)),
                r if r > 0.5 => format!("{:.0}% more drift", 100.0 * (1.0 / r - 1.0)),
                r => format!("{:.1}× more drift", 1.0 / r),
            });
        }
        (Some(_), None) => parts.push("drift measured (theirs unknown)".into()),
        (None, Some(_)) => parts.push("drift unknown (theirs measured)".into()),
        _ => {}
    }
    if let (Some(a), Some(b)) = (&p.ram_mib, &q.ram_mib) {
        let r = a.value / b.value;
        if !near(a.value, b.value) {
            parts.push(if r < 1.0 {
                format!("{:.0}% less memory", 100.0 * (1.0 - r))
            } else {
                format!("{:.0}% more memory", 100.0 * (r - 1.0))
            });
        } else {
            parts.push("same memory".into());
        }
    }
    if let (Some(a), Some(b)) = (&p.j_per_token, &q.j_per_token) {
        let r = a.value / b.value;
        parts.push(if r <= 1.0 {
            format!("{:.0}% less energy per token", 100.0 * (1.0 - r))
        } else {
            format!("{:.0}% more energy per token", 100.0 * (r - 1.0))
        });
    }
    parts.join(", ")
}

/// The best candidate of `pool` (indices into `cs`) for `o`: the highest score, a tie within [`TIE`] decided by
/// the other objectives in order (and by whether it was measured here).
fn best(cs: &[Candidate], pool: &[usize], o: Objective) -> Option<usize> {
    best_of_tie(cs, pool, o).0
}

/// [`best`], and the candidates tied with the leader on `o` (the pick among them).
fn best_of_tie(cs: &[Candidate], pool: &[usize], o: Objective) -> (Option<usize>, Vec<usize>) {
    let here: Vec<usize> = pool.iter().copied().filter(|&i| cs[i].evidence == Evidence::Here).collect();
    let pool = if here.is_empty() { pool.to_vec() } else { here };
    let top = pool
        .iter()
        .copied()
        .filter(|&i| score(&cs[i], o).is_some())
        .max_by(|&a, &b| score(&cs[a], o).unwrap_or(f64::MIN).total_cmp(&score(&cs[b], o).unwrap_or(f64::MIN)));
    let Some(top) = top else { return (None, Vec::new()) };
    let mut tied: Vec<usize> = pool.iter().copied().filter(|&i| i == top || tied(&cs[i], &cs[top], o)).collect();
    tied.sort_by(|&a, &b| {
        order(o)
            .into_iter()
            .skip(1)
            .map(|x| cmp_score(score(&cs[a], x), score(&cs[b], x)))
            .find(|c| c.is_ne())
            .unwrap_or(Ordering::Equal)
            .then_with(|| cs[a].label.cmp(&cs[b].label))
    });
    (tied.first().copied(), tied)
}

fn relax(r: &Recommendation, pick: Option<usize>) -> Vec<BudgetChange> {
    let cs = &r.candidates;
    let mut out = Vec::new();
    let flags: Vec<String> = {
        let mut f: Vec<String> =
            cs.iter().flat_map(|c| c.checks.iter().map(|k| k.flag.clone())).filter(|f| !f.is_empty()).collect();
        f.sort();
        f.dedup();
        f
    };
    for flag in flags {
        // Candidates held back by this flag alone (failed, not unknown: an unknown cannot be relaxed away).
        let admitted: Vec<usize> = (0..cs.len())
            .filter(|&i| {
                let c = &cs[i];
                let mine = c.checks.iter().find(|k| k.flag == flag);
                matches!(mine.map(|k| &k.verdict), Some(Verdict::Fail { .. }))
                    && c.checks.iter().filter(|k| k.flag != flag).all(|k| k.verdict == Verdict::Pass)
            })
            .collect();
        let mut pool: Vec<usize> = admitted.clone();
        pool.extend(r.front.iter().copied());
        pool.extend((0..cs.len()).filter(|&i| cs[i].feasible()));
        pool.sort();
        pool.dedup();
        let Some(winner) = best(cs, &pool, r.objective) else { continue };
        if Some(winner) == pick || !admitted.contains(&winner) {
            continue;
        }
        let w = &cs[winner];
        let value = match flag.as_str() {
            "--min-decode-tps" => w.decode_tps.as_ref().map(|b| b.value * 0.999),
            "--max-ttft-ms" => w.ttft_ms.as_ref().map(|b| b.value * 1.001),
            "--ram-mib" => w.ram_mib.as_ref().map(|b| b.value * 1.001),
            "--max-kld" => w.kld.as_ref().map(|b| b.value * 1.001),
            "--max-j-per-token" => w.j_per_token.as_ref().map(|b| b.value * 1.001),
            _ => None,
        };
        let Some(v) = value else { continue };
        let then = match pick {
            Some(p) => format!("picks {}: {} than the current pick", w.label, versus(w, &cs[p])),
            None => format!("picks {}", w.label),
        };
        out.push(BudgetChange { change: format!("{flag} {}", sig(v)), then });
    }
    out
}

fn tighten(r: &Recommendation, pick: usize) -> Vec<BudgetChange> {
    let cs = &r.candidates;
    let p = &cs[pick];
    let feasible: Vec<usize> = (0..cs.len()).filter(|&i| i != pick && cs[i].feasible()).collect();
    let mut out = Vec::new();
    let mut add = |flag: &str, limit: f64, keep: &dyn Fn(&Candidate) -> bool| {
        let pool: Vec<usize> = feasible.iter().copied().filter(|&i| keep(&cs[i])).collect();
        let then = match best(cs, &pool, r.objective) {
            Some(n) => format!("rejects the pick; then {}: {} than the pick", cs[n].label, versus(&cs[n], p)),
            None => "rejects the pick, and no measured candidate is left".into(),
        };
        out.push(BudgetChange { change: format!("{flag} {}", sig(limit)), then });
    };
    if let Some(d) = &p.decode_tps {
        let limit = d.value * 1.001;
        add("--min-decode-tps", limit, &|c| c.decode_tps.as_ref().is_some_and(|b| b.value >= limit));
    }
    if let Some(k) = &p.kld {
        let limit = k.value * 0.999;
        add("--max-kld", limit, &|c| c.kld.as_ref().is_some_and(|b| b.value <= limit));
    }
    if let Some(m) = &p.ram_mib {
        let limit = m.value * 0.999;
        add("--ram-mib", limit, &|c| c.ram_mib.as_ref().is_some_and(|b| b.value <= limit));
    }
    if let (Some(t), Some(_)) = (&p.ttft_ms, r.budget.max_ttft_ms) {
        let limit = t.value * 0.999;
        add("--max-ttft-ms", limit, &|c| c.ttft_ms.as_ref().is_some_and(|b| b.value <= limit));
    }
    out
}

fn missing(r: &Recommendation) -> Vec<Missing> {
    let b = &r.budget;
    let wanted = |field: &str| match field {
        "kld" => b.max_kld.is_some() || r.objective == Objective::Quality,
        "j_per_token" => b.max_j_per_token.is_some() || r.objective == Objective::Energy,
        "ram_mib" => b.ram_mib.is_some() || r.objective == Objective::Memory,
        "ttft_ms" => b.max_ttft_ms.is_some(),
        "decode_tps" => true,
        _ => false,
    };
    let mut out = Vec::new();
    // By field: the candidates it is unknown for, grouped by model and suite into one run each.
    for field in ["decode_tps", "ttft_ms", "ram_mib", "kld", "j_per_token"] {
        let unknown: Vec<&Candidate> = r
            .candidates
            .iter()
            .filter(|c| wanted(field) && c.unknown.contains_key(field) && !c.checks.iter().any(|k| k.flag.is_empty()))
            .collect();
        if unknown.is_empty() {
            continue;
        }
        let why = &unknown[0].unknown[field];
        let names: Vec<&str> = unknown.iter().map(|c| c.label.as_str()).collect();
        let whom = if names.len() == r.candidates.len() && names.len() > 2 {
            format!("every candidate ({})", names.len())
        } else {
            names.join(", ")
        };
        let what = format!("{field} unknown for {whom} ({why})");
        if field == "j_per_token" {
            out.push(Missing {
                what: format!(
                    "{what}: attach a meter (`edgebench run --energy-cmd CMD`) or measure on a device that has one"
                ),
                command: None,
                argv: Vec::new(),
            });
            continue;
        }
        // One run per model, device, options and limits, over the backends and threads it is unknown for.
        let mut runs: BTreeMap<String, (&Candidate, Vec<&str>, Vec<usize>)> = BTreeMap::new();
        for c in &unknown {
            let key =
                format!("{:?}", (&c.run.model, &c.run.suite, &c.run.device, &c.run.backend_opts, &c.run.limit_flags));
            let e = runs.entry(key).or_insert((c, Vec::new(), Vec::new()));
            if !e.1.contains(&c.backend.as_str()) {
                e.1.push(&c.backend);
            }
            if !e.2.contains(&c.threads) {
                e.2.push(c.threads);
            }
        }
        for (c, backends, threads) in runs.into_values() {
            let argv = match field {
                "kld" => c.run.argv(None, &backends, &threads, &["--drift", "short"]),
                _ => c.run.argv(Some("standard"), &backends, &threads, &[]),
            };
            out.push(Missing { what: what.clone(), command: Some(command_line(&argv)), argv });
        }
    }
    out
}

/// Ranks the candidates of `r` and fills in the front, the pick, the trade-offs, the budget changes and the
/// missing measurements.
pub(super) fn choose(mut r: Recommendation) -> Recommendation {
    let o = r.objective;
    r.candidates.sort_by(|a, b| rank(a, b, o));
    let feasible: Vec<usize> = (0..r.candidates.len()).filter(|&i| r.candidates[i].feasible()).collect();
    // The pick leads the ranking.
    let (pick, tie) = best_of_tie(&r.candidates, &feasible, o);
    let tied_labels: Vec<String> =
        tie.iter().filter(|&&i| Some(i) != pick).map(|&i| r.candidates[i].label.clone()).collect();
    if let Some(p) = pick {
        let c = r.candidates.remove(p);
        r.candidates.insert(0, c);
    }
    let cs = &r.candidates;
    let feasible: Vec<usize> = (0..cs.len()).filter(|&i| cs[i].feasible()).collect();
    r.front =
        feasible.iter().copied().filter(|&i| !feasible.iter().any(|&j| j != i && dominates(&cs[j], &cs[i]))).collect();
    let pick = pick.map(|_| 0);
    r.pick = pick;
    let cs = &r.candidates;
    match pick {
        Some(p) => {
            let c = &cs[p];
            let figure = match o {
                Objective::Speed => c.decode_tps.as_ref().map(|b| format!("decode {} t/s ({})", sig(b.value), b.how)),
                Objective::Quality => c.kld.as_ref().map(|b| format!("KLD {} ({})", sig(b.value), b.how)),
                Objective::Memory => c.ram_mib.as_ref().map(|b| format!("memory {} MiB ({})", sig(b.value), b.how)),
                Objective::Energy => c.j_per_token.as_ref().map(|b| format!("{} J/token ({})", sig(b.value), b.how)),
            };
            let evidence = match &c.evidence {
                Evidence::Here => "measured on this device".to_string(),
                Evidence::Elsewhere { device } => format!("measured on {device}, not on this device"),
            };
            r.trade_offs.push(format!(
                "pick for {}: {} — {}; {evidence}",
                o.name(),
                c.label,
                figure.unwrap_or_else(|| "its figure is unknown".into())
            ));
            if !tied_labels.is_empty() {
                r.trade_offs.push(format!(
                    "tie on {} (95% intervals overlap, or within {:.0}% without one) with {}: decided by the other \
                     figures in the order {}",
                    o.name(),
                    100.0 * TIE,
                    tied_labels.join(", "),
                    order(o).iter().skip(1).map(|x| x.name()).collect::<Vec<_>>().join(", ")
                ));
            }
            for &i in &r.front {
                if i != p {
                    r.trade_offs.push(format!("vs {}: {}", cs[i].label, versus(c, &cs[i])));
                }
            }
            r.changes = relax(&r, pick);
            r.changes.extend(tighten(&r, p));
        }
        None => {
            r.trade_offs.push(if feasible.is_empty() {
                "no candidate meets every constraint (see the rejections)".into()
            } else {
                format!("no feasible candidate has its {} figure measured", o.name())
            });
            r.changes = relax(&r, None);
        }
    }
    r.missing = missing(&r);
    r
}
