//! `edgebench leaderboard verify`: every submission read, its envelope opened and checked against the file, tier 1's
//! checks run, replays found, corroboration (tier 2) and maintainers' reproductions (tier 3) weighed, and each
//! submission given a tier with the reasons it is not higher. Hostile or broken submissions are rejected with the
//! reason; none is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use edgebench_core::comparison::{Rule, Verdict};
use edgebench_core::metrics::{Better, DECODE_TPS, PREFILL_TPS};
use edgebench_core::results::{CellStatus, RunResults};
use serde::Serialize;

use crate::checks::{self, CellVerdict};
use crate::envelope::{self, Signer};
use crate::keys::{Keyring, Role};
use crate::policy::Policy;
use crate::scan;
use crate::tiers::{Recorded, Tier};
use crate::LeaderboardError;

/// One submission (or a stray file) and what verification made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Path in the leaderboard (`submissions/<device>/<run>.json`).
    pub rel: String,
    /// The tier reached.
    pub tier: Tier,
    /// Why it is rejected, or why it is not a tier higher (each reason starts with the tier it blocks).
    pub reasons: Vec<String>,
    /// SHA-256 of the results file.
    pub results_sha256: Option<String>,
    /// The signer's name, when the key is listed.
    pub signer: Option<String>,
    /// Key id of the signature.
    pub key_id: Option<String>,
    /// Device model the submission is grouped by (CPU, CPUs, GPUs, limits).
    pub device_model: Option<String>,
    /// Each measured cell: ranked or why not.
    pub cells: Vec<CellVerdict>,
    /// Tier recorded in `tiers.json`, if any.
    pub recorded: Option<Tier>,
    /// The results (not serialized: the site renders them).
    #[serde(skip)]
    pub results: Option<RunResults>,
}

/// A maintainer's re-run and what it showed.
#[derive(Debug, Clone, Serialize)]
pub struct ReproEntry {
    /// Path in the leaderboard.
    pub rel: String,
    /// The submission it reproduces (when it names one found).
    pub reproduces: Option<String>,
    /// Whether it is usable evidence.
    pub ok: bool,
    /// What it found, or why it is rejected.
    pub reasons: Vec<String>,
}

/// The whole verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Every submission and stray file, by path.
    pub entries: Vec<Entry>,
    /// Every reproduction.
    pub reproductions: Vec<ReproEntry>,
    /// Submissions whose recorded tier is above the one they reach now.
    pub unmet_claims: Vec<String>,
}

impl Verification {
    /// Whether `verify` should exit 1: a rejected submission or reproduction, or an unmet claim.
    pub fn failed(&self) -> bool {
        !self.unmet_claims.is_empty()
            || self.entries.iter().any(|e| e.tier == Tier::Rejected)
            || self.reproductions.iter().any(|r| !r.ok)
    }

    /// `7 submissions: 1 at T3, 1 at T2, 2 at T1, 2 at T0, 1 rejected; 2 reproductions; 0 unmet claims`.
    pub fn counts(&self) -> String {
        let n = |t: Tier| self.entries.iter().filter(|e| e.tier == t).count();
        format!(
            "{} submissions: {} at T3, {} at T2, {} at T1, {} at T0, {} rejected; {} reproductions; {} unmet claims",
            self.entries.len(),
            n(Tier::T3),
            n(Tier::T2),
            n(Tier::T1),
            n(Tier::T0),
            n(Tier::Rejected),
            self.reproductions.len(),
            self.unmet_claims.len()
        )
    }

    /// The tiers as `tiers.json` records them (rejected entries are not recorded).
    pub fn recorded(&self) -> Recorded {
        Recorded {
            tiers: self.entries.iter().filter(|e| e.tier != Tier::Rejected).map(|e| (e.rel.clone(), e.tier)).collect(),
        }
    }
}

/// Verifies the leaderboard in `dir`. Errors only for the leaderboard's own files (policy, keys, tiers).
pub fn verify(dir: &Path) -> Result<Verification, LeaderboardError> {
    let policy = Policy::read(dir)?;
    let keys = Keyring::read(dir)?;
    let recorded = Recorded::read(dir)?;
    let (found, strays) = scan::walk(dir, "submissions", 1);
    let mut entries: Vec<Entry> = strays
        .into_iter()
        .map(|s| Entry { reasons: vec![s.reason], ..entry(s.rel, Tier::Rejected, &recorded) })
        .collect();
    for f in &found {
        entries.push(read_submission(f, &policy, &keys, &recorded));
    }
    replays(&mut entries);
    corroborate(&mut entries, &policy);
    let reproductions = reproduce(dir, &mut entries, &policy, &keys);
    let mut unmet = Vec::new();
    for e in &entries {
        if let Some(r) = e.recorded.filter(|r| *r > e.tier) {
            unmet.push(format!("{}: recorded as {} but reaches {} now", e.rel, r.label(), e.tier.label()));
        }
    }
    for rel in recorded.tiers.keys().filter(|rel| !entries.iter().any(|e| &e.rel == *rel)) {
        unmet.push(format!("{rel}: recorded in tiers.json but no longer in the leaderboard"));
    }
    entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(Verification { entries, reproductions, unmet_claims: unmet })
}

fn entry(rel: String, tier: Tier, recorded: &Recorded) -> Entry {
    Entry {
        recorded: recorded.tiers.get(&rel).copied(),
        rel,
        tier,
        reasons: Vec::new(),
        results_sha256: None,
        signer: None,
        key_id: None,
        device_model: None,
        cells: Vec::new(),
        results: None,
    }
}

/// A results file whose envelope opened and signs it.
struct Opened {
    results: RunResults,
    sha256: String,
    statement: envelope::Statement,
    signer: Signer,
}

/// Reads a results file and its envelope, or gives the reason to reject it (with the file's SHA-256 once known).
fn open_signed(f: &scan::Found, policy: &Policy, keys: &Keyring) -> Result<Opened, (Option<String>, String)> {
    let bytes = edgebench_core::limits::read_bytes(&f.results, policy.max_results_bytes, "submission")
        .map_err(|e| (None, format!("unreadable: {e}")))?;
    let sha = crate::sha256_hex(&bytes);
    let with = |m: String| (Some(sha.clone()), m);
    let env_text = match edgebench_core::limits::read_text(&f.envelope, crate::ENVELOPE_LIMIT, "envelope") {
        Ok(t) => t,
        Err(edgebench_core::limits::ReadError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(with("missing signature: no envelope (<run>.dsse.json) beside the results".into()))
        }
        Err(e) => return Err(with(format!("envelope unreadable: {e}"))),
    };
    let (st, signer) = envelope::open(&env_text, keys).map_err(|e| with(e.to_string()))?;
    let name = f.results.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if st.subject[0].name != name {
        return Err(with(format!("the envelope signs {:?}, not this file {name:?}", st.subject[0].name)));
    }
    if st.sha256() != Some(sha.as_str()) {
        return Err(with(format!(
            "the results file changed after signing: signed sha256 {}, file sha256 {sha}",
            st.sha256().unwrap_or("(none)")
        )));
    }
    if let Signer::Accepted { name: n, .. } = &signer {
        if &st.predicate.signer != n {
            return Err(with(format!("the statement names signer {:?} but key is {n:?}'s", st.predicate.signer)));
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| with("results file is not UTF-8 text".into()))?;
    let r = edgebench_runner::results_io::parse(&f.results, &text).map_err(|e| with(e.to_string()))?;
    Ok(Opened { results: r, sha256: sha, statement: st, signer })
}

fn read_submission(f: &scan::Found, policy: &Policy, keys: &Keyring, recorded: &Recorded) -> Entry {
    let mut e = entry(f.rel.clone(), Tier::Rejected, recorded);
    let Opened { results: r, sha256: sha, statement: st, signer } = match open_signed(f, policy, keys) {
        Ok(x) => x,
        Err((sha, why)) => {
            e.results_sha256 = sha;
            e.reasons.push(why);
            return e;
        }
    };
    e.results_sha256 = Some(sha);
    if st.predicate.kind != "submission" {
        e.reasons.push(format!("a {:?} statement under submissions/", st.predicate.kind));
        return e;
    }
    if let Some(bad) = markup(&r) {
        e.reasons.push(bad);
        return e;
    }
    let unregistered: Vec<String> = r
        .models
        .values()
        .filter(|m| policy.model(&m.sha256).is_none())
        .map(|m| format!("{} (sha256 {})", m.id, m.sha256))
        .collect();
    if !unregistered.is_empty() {
        e.reasons.push(format!("unregistered model hash: {}", unregistered.join(", ")));
        return e;
    }
    e.device_model = Some(device_model(&r));
    e.tier = Tier::T0;
    match &signer {
        Signer::Accepted { name, id, .. } => {
            e.signer = Some(name.clone());
            e.key_id = Some(id.clone());
        }
        Signer::Unknown { id } => {
            e.key_id = Some(id.clone());
            e.reasons.push(format!("T1: signed by key {id}, which is not in keys/keys.toml (signature not checked)"));
        }
    }
    let out = checks::tier1(&r, policy);
    e.cells = out.cells;
    e.reasons.extend(out.failures.into_iter().map(|m| format!("T1: {m}")));
    if e.reasons.is_empty() {
        e.tier = Tier::T1;
    }
    e.results = Some(r);
    e
}

/// The first string that looks like markup (`<tag`, `</`, `<!`) outside the free-text fields (greedy output, stderr,
/// prompts, the command line): a device or build field holding markup is an attack on the site, not a measurement.
fn markup(r: &RunResults) -> Option<String> {
    fn walk(v: &serde_json::Value, path: &mut Vec<String>) -> Option<String> {
        match v {
            serde_json::Value::String(s) => {
                let b = s.as_bytes();
                let tag =
                    b.windows(2).any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/' || w[1] == b'!'));
                tag.then(|| format!("markup in {}: {:?}", path.join("."), s.chars().take(60).collect::<String>()))
            }
            serde_json::Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| {
                path.push(i.to_string());
                let r = walk(x, path);
                path.pop();
                r
            }),
            serde_json::Value::Object(o) => o.iter().find_map(|(k, x)| {
                if ["sample_output", "stderr_tail", "workload", "command_line", "resolved", "resumed"]
                    .contains(&k.as_str())
                {
                    return None;
                }
                path.push(k.clone());
                let r = walk(x, path);
                path.pop();
                r
            }),
            _ => None,
        }
    }
    walk(&serde_json::to_value(r).ok()?, &mut Vec::new())
}

/// What submissions are grouped and corroborated by: CPU model, logical CPUs, GPUs and limits.
pub fn device_model(r: &RunResults) -> String {
    let d = &r.device;
    let mut s = format!("{} · {} CPUs", d.cpu_model.trim(), d.logical_cpus);
    if !d.gpus.is_empty() {
        s += &format!(" · {}", d.gpus.join(", "));
    }
    if let Some(l) = &d.limits {
        s += &format!(" · limited: {}", l.describe());
    }
    s
}

/// A digest of every raw sample of every cell: the same measurements under two names is a replay, whatever else
/// was edited.
fn samples_digest(r: &RunResults) -> String {
    let mut s = String::new();
    for c in &r.cells {
        for (k, m) in &c.metrics {
            s += k;
            for x in &m.samples {
                s += &format!(",{x:e}");
            }
            s.push(';');
        }
    }
    crate::sha256_hex(s.as_bytes())
}

/// Rejects every copy of a results file, or of its raw samples, that another submission holds — whatever that other
/// one's own state (a revoked key's file re-signed by another key is a replay too). The copy `tiers.json` published
/// first keeps its place; with none published, none does.
fn replays(entries: &mut [Entry]) {
    let mut by: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(sha) = &e.results_sha256 {
            by.entry(format!("the same results file (sha256 {sha})")).or_default().push(i);
        }
        if let Some(r) = &e.results {
            if r.cells.iter().any(|c| !c.metrics.is_empty()) {
                by.entry(format!("the same raw samples (digest {})", &samples_digest(r)[..16])).or_default().push(i);
            }
        }
    }
    let mut reject: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (what, idx) in by.into_iter().filter(|(_, v)| v.len() > 1) {
        let mut idx = idx;
        idx.dedup();
        if idx.len() < 2 {
            continue;
        }
        let keep: Vec<usize> =
            idx.iter().copied().filter(|&i| entries[i].recorded.is_some_and(|t| t != Tier::Rejected)).collect();
        let keep = if keep.len() == 1 { Some(keep[0]) } else { None };
        for &i in &idx {
            if Some(i) == keep {
                continue;
            }
            let others: Vec<String> = idx
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| format!("{} (key {})", entries[j].rel, entries[j].key_id.as_deref().unwrap_or("?")))
                .collect();
            reject.entry(i).or_default().push(format!("replay: {what} as {}", others.join(", ")));
        }
    }
    for (i, why) in reject {
        let e = &mut entries[i];
        if e.tier != Tier::Rejected {
            e.tier = Tier::Rejected;
            e.reasons.clear();
        }
        e.reasons.extend(why);
    }
}

/// The cell identity boards compare across submissions: model file, backend, device, threads, workload.
type CellId = (String, String, String, usize, String);

fn ranked_cells(e: &Entry) -> Vec<(CellId, &edgebench_core::results::CellResult)> {
    let Some(r) = &e.results else { return Vec::new() };
    r.cells
        .iter()
        .filter(|c| c.status == CellStatus::Ok && e.cells.iter().any(|v| v.key == c.key && v.ranked))
        .map(|c| {
            let sha = crate::model_sha(r, &c.key.model).to_string();
            ((sha, c.key.backend.clone(), c.key.device.clone(), c.key.threads, c.key.workload.clone()), c)
        })
        .collect()
}

fn interval(c: &edgebench_core::results::CellResult, k: &str) -> Option<[f64; 2]> {
    c.metrics.get(k).map(|m| m.summary.median_ci95.unwrap_or([m.summary.min, m.summary.max]))
}

fn corroborate(entries: &mut [Entry], policy: &Policy) {
    let t1: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].tier == Tier::T1).collect();
    let mut notes: Vec<(usize, Vec<String>)> = Vec::new();
    for &i in &t1 {
        let e = &entries[i];
        let mine = ranked_cells(e);
        let peers: Vec<usize> =
            t1.iter().copied().filter(|&j| j != i && entries[j].device_model == e.device_model).collect();
        let mut agreeing: BTreeSet<String> = BTreeSet::new();
        let mut why = Vec::new();
        for &j in &peers {
            let p = &entries[j];
            if p.key_id == e.key_id || p.signer == e.signer {
                continue;
            }
            let theirs = ranked_cells(p);
            let mut shared = 0;
            let mut apart = Vec::new();
            for (id, c) in &mine {
                let Some((_, o)) = theirs.iter().find(|(oid, _)| oid == id) else { continue };
                shared += 1;
                for k in [DECODE_TPS.key, PREFILL_TPS.key] {
                    let t = policy.corroboration.tolerance;
                    let widen = |x: [f64; 2]| [x[0] * (1.0 - t), x[1] * (1.0 + t)];
                    if let (Some(a), Some(b)) = (interval(c, k).map(widen), interval(o, k).map(widen)) {
                        if a[1] < b[0] || b[1] < a[0] {
                            apart.push(format!(
                                "{} {k} [{:.1}, {:.1}] vs [{:.1}, {:.1}] (95% intervals widened by {:.0}%)",
                                c.key.label(),
                                a[0],
                                a[1],
                                b[0],
                                b[1],
                                t * 100.0
                            ));
                        }
                    }
                }
            }
            if shared > 0 && apart.is_empty() {
                agreeing.insert(p.key_id.clone().unwrap_or_default());
            } else if shared == 0 {
                why.push(format!("T2: no ranked cell in common with {}", p.rel));
            } else {
                why.push(format!("T2: disagrees with {} on {}", p.rel, apart.join("; ")));
            }
        }
        let keys_needed = policy.corroboration.min_keys - 1;
        if agreeing.len() < keys_needed {
            why.insert(
                0,
                format!(
                    "T2: {} other key(s) on {} agree, {keys_needed} needed",
                    agreeing.len(),
                    e.device_model.as_deref().unwrap_or("?")
                ),
            );
        } else {
            why.clear();
        }
        // Robust outlier test among every tier-1 submission on the device model, per shared cell and metric.
        for (id, c) in &mine {
            for k in [DECODE_TPS.key, PREFILL_TPS.key] {
                let Some(x) = c.median(k) else { continue };
                let mut all: Vec<f64> = t1
                    .iter()
                    .filter(|&&j| entries[j].device_model == e.device_model)
                    .filter_map(|&j| {
                        ranked_cells(&entries[j]).into_iter().find(|(oid, _)| oid == id).and_then(|(_, o)| o.median(k))
                    })
                    .filter(|v| *v > 0.0)
                    .map(f64::ln)
                    .collect();
                if all.len() < 3 || x <= 0.0 {
                    continue;
                }
                let med = edgebench_stats::median(&all);
                for v in &mut all {
                    *v = (*v - med).abs();
                }
                let mad = edgebench_stats::median(&all) * 1.4826;
                let z = if mad > 0.0 { (x.ln() - med).abs() / mad } else { 0.0 };
                if z > policy.corroboration.max_robust_z {
                    why.push(format!(
                        "T2: {} {k} {x:.1} is an outlier among {} submissions (robust z {z:.1} > {})",
                        c.key.label(),
                        all.len(),
                        policy.corroboration.max_robust_z
                    ));
                }
            }
        }
        notes.push((i, why));
    }
    for (i, why) in notes {
        let e = &mut entries[i];
        if why.is_empty() {
            e.tier = Tier::T2;
        } else {
            e.reasons.extend(why);
        }
    }
}

/// One reproduction of a submission: its beacon, the groups it re-ran, what differed.
struct Evidence {
    beacon: String,
    ran: Vec<String>,
    problems: Vec<String>,
}

fn reproduce(dir: &Path, entries: &mut [Entry], policy: &Policy, keys: &Keyring) -> Vec<ReproEntry> {
    let (found, strays) = scan::walk(dir, "reproductions", 2);
    let mut out: Vec<ReproEntry> = strays
        .into_iter()
        .map(|s| ReproEntry { rel: s.rel, reproduces: None, ok: false, reasons: vec![s.reason] })
        .collect();
    // Submission index → what each of its reproductions showed.
    let mut evidence: BTreeMap<usize, Vec<Evidence>> = BTreeMap::new();
    for f in &found {
        let mut re = ReproEntry { rel: f.rel.clone(), reproduces: None, ok: false, reasons: Vec::new() };
        let target = format!("submissions/{}/{}.json", f.folders[0], f.folders[1]);
        let Some(si) = entries.iter().position(|e| e.rel == target) else {
            re.reasons.push(format!("reproduces {target}, which is not in the leaderboard"));
            out.push(re);
            continue;
        };
        re.reproduces = Some(target.clone());
        match open_signed(f, policy, keys) {
            Err((_, why)) => re.reasons.push(why),
            Ok(Opened { results: r, statement: st, signer, .. }) => {
                let sub = &entries[si];
                match (&signer, &st.predicate.reproduces) {
                    (Signer::Accepted { role: Role::Maintainer, .. }, Some(rep))
                        if Some(&rep.results_sha256) == sub.results_sha256.as_ref() =>
                    {
                        let (ran, problems) = compare_repro(sub, &r, policy);
                        evidence.entry(si).or_default().push(Evidence {
                            beacon: rep.beacon.clone(),
                            ran,
                            problems: problems.clone(),
                        });
                        re.ok = true;
                        re.reasons = if problems.is_empty() { vec!["no significant change".into()] } else { problems };
                    }
                    (Signer::Accepted { role: Role::Maintainer, .. }, Some(_)) => {
                        re.reasons.push(format!("reproduces another version of {target} (results SHA-256 differs)"))
                    }
                    (Signer::Accepted { role: Role::Maintainer, .. }, None) => {
                        re.reasons.push("not a reproduction statement".into())
                    }
                    (Signer::Accepted { name, .. }, _) => {
                        re.reasons.push(format!("signed by {name}, not a maintainer's key"))
                    }
                    (Signer::Unknown { id }, _) => re.reasons.push(format!("signed by unknown key {id}")),
                }
            }
        }
        out.push(re);
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if e.tier != Tier::T2 {
            continue;
        }
        let Some(ev) = evidence.get(&i) else {
            e.reasons.push("T3: no maintainer has reproduced it".into());
            continue;
        };
        let (Some(r), Some(sha)) = (&e.results, &e.results_sha256) else { continue };
        let beacons: BTreeSet<&String> = ev.iter().map(|x| &x.beacon).collect();
        if beacons.len() != 1 {
            e.reasons.push(format!("T3: reproductions name {} different beacons", beacons.len()));
            continue;
        }
        let beacon = beacons.into_iter().next().expect("one");
        let chosen = crate::reproduce::sample(r, sha, beacon, policy.reproduction.cells);
        let ran: BTreeSet<&String> = ev.iter().flat_map(|x| &x.ran).collect();
        let missing: Vec<String> = chosen
            .iter()
            .map(|g| format!("{} {} {} t{}", g.model, g.backend, g.device, g.threads))
            .filter(|g| !ran.contains(g))
            .collect();
        let problems: Vec<&String> = ev.iter().flat_map(|x| &x.problems).collect();
        if !missing.is_empty() {
            e.reasons.push(format!(
                "T3: the cells drawn with beacon {beacon:?} were not all re-run: missing {}",
                missing.join(", ")
            ));
        } else if !problems.is_empty() {
            e.reasons.extend(problems.into_iter().map(|p| format!("T3: {p}")));
        } else {
            e.tier = Tier::T3;
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// Compares a maintainer's re-run with the submission cell by cell: `(groups re-run, problems)`.
fn compare_repro(sub: &Entry, repro: &RunResults, policy: &Policy) -> (Vec<String>, Vec<String>) {
    let rule = Rule {
        floor: policy.reproduction.floor,
        noise_multiple: policy.reproduction.noise_multiple,
        abs_floor: 0.0,
        optional: false,
    };
    let Some(s) = &sub.results else { return (Vec::new(), vec!["the submission could not be read".into()]) };
    let mut ran = BTreeSet::new();
    let mut problems = Vec::new();
    for c in repro.cells.iter() {
        let sha = crate::model_sha(repro, &c.key.model);
        let Some(o) = s.cells.iter().find(|o| {
            o.key.backend == c.key.backend
                && o.key.device == c.key.device
                && o.key.threads == c.key.threads
                && o.key.workload == c.key.workload
                && crate::model_sha(s, &o.key.model) == sha
        }) else {
            problems.push(format!("re-ran {}, which the submission does not have", c.key.label()));
            continue;
        };
        if c.status != CellStatus::Ok {
            problems.push(format!("{} did not run in the reproduction: {:?}", c.key.label(), c.status));
            continue;
        }
        ran.insert(format!("{} {} {} t{}", o.key.model, o.key.backend, o.key.device, o.key.threads));
        for k in [DECODE_TPS.key, PREFILL_TPS.key] {
            let (Some(a), Some(b)) = (o.metrics.get(k), c.metrics.get(k)) else { continue };
            let cmp = edgebench_stats::compare::compare(&a.samples, &b.samples, Better::Higher, rule);
            if cmp.verdict != Verdict::NoSignificantChange {
                problems.push(format!(
                    "{} {k}: submitted {:.1}, reproduced {:.1} ({:?}, ratio {:.3}, interval [{:.3}, {:.3}], threshold {:.3})",
                    c.key.label(),
                    cmp.base_median,
                    cmp.current_median,
                    cmp.verdict,
                    cmp.ratio,
                    cmp.ratio_ci[0],
                    cmp.ratio_ci[1],
                    cmp.threshold
                ));
            }
        }
    }
    (ran.into_iter().collect(), problems)
}
