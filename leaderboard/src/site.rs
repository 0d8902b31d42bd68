//! `edgebench leaderboard build`: the static site — one page per model × suite (ranked view and every-tier view),
//! one per device model with the spread of its submissions, one per submission with its tier and reasons beside
//! edgebench's own HTML report of its results. Self-contained (inline CSS and SVG, no scripts, nothing fetched) and
//! deterministic: the same leaderboard gives byte-identical files (no clock, every list sorted).

use std::collections::BTreeMap;
use std::path::Path;

use edgebench_core::metrics::{DECODE_J_PER_TOKEN, DECODE_TPS, KLD_MEAN, PEAK_RSS_MIB, PREFILL_TPS, TTFT_MS};
use edgebench_core::results::CellResult;
use edgebench_reports::charts;
use serde::Serialize;

use crate::policy::Policy;
use crate::submit::slug;
use crate::tiers::Tier;
use crate::verify::{Entry, Verification};
use crate::{io_err, LeaderboardError};

const TEMPLATES: [(&str, &str); 5] = [
    ("base.html", include_str!("../templates/base.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("board.html", include_str!("../templates/board.html")),
    ("device.html", include_str!("../templates/device.html")),
    ("submission.html", include_str!("../templates/submission.html")),
];

/// The lowest tier ranked by default.
pub const RANKED_FROM: Tier = Tier::T2;

#[derive(Serialize)]
struct Row {
    rank: String,
    device_model: String,
    device_href: String,
    backend: String,
    device: String,
    threads: usize,
    signer: String,
    decode: String,
    prefill: String,
    ttft: String,
    ram: String,
    energy: String,
    kld: String,
    tier: &'static str,
    why: String,
    href: String,
    #[serde(skip)]
    decode_value: f64,
    #[serde(skip)]
    decode_ci: Option<[f64; 2]>,
    #[serde(skip)]
    prefill_value: f64,
}

fn fmt(c: &CellResult, k: &str, digits: usize) -> String {
    c.median(k).map_or("—".into(), |v| format!("{v:.digits$}"))
}

fn page_of(rel: &str) -> String {
    format!("sub-{}.html", slug(rel.trim_start_matches("submissions/").trim_end_matches(".json")))
}

fn device_page(name: &str) -> String {
    format!("device-{}.html", slug(name))
}

/// Writes the site for `v` into `out` (created; files there are replaced). Returns the files written.
pub fn build(v: &Verification, policy: &Policy, out: &Path) -> Result<Vec<String>, LeaderboardError> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    for (name, text) in TEMPLATES {
        env.add_template(name, text).expect("the leaderboard templates parse");
    }
    let version = env!("CARGO_PKG_VERSION");
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    // Each page's body inside the common frame (title, styles, navigation, the tiers' legend).
    let render = |name: &str, title: String, ctx: minijinja::Value| -> Result<String, LeaderboardError> {
        let err = |e: minijinja::Error| LeaderboardError::Usage(format!("rendering {name}: {e}"));
        let body = env.get_template(name).and_then(|t| t.render(ctx)).map_err(err)?;
        env.get_template("base.html").and_then(|t| t.render(minijinja::context! { title, body, version })).map_err(err)
    };
    let model_name = |sha: &str| {
        policy.model(sha).map_or_else(|| format!("model {}", &sha[..sha.len().min(12)]), |m| m.name.clone())
    };

    // Boards: model × suite → workload → rows.
    type Boards = BTreeMap<(String, String), BTreeMap<String, Vec<Row>>>;
    let mut boards: Boards = BTreeMap::new();
    for e in v.entries.iter().filter(|e| e.tier >= Tier::T0) {
        let Some(r) = &e.results else { continue };
        let why = e.reasons.first().cloned().unwrap_or_default();
        for c in r.cells.iter().filter(|c| c.median(DECODE_TPS.key).is_some()) {
            let Some(verdict) = e.cells.iter().find(|x| x.key == c.key) else { continue };
            if !verdict.ranked && e.tier > Tier::T0 {
                continue;
            }
            let sha = crate::model_sha(r, &c.key.model).to_string();
            let dm = e.device_model.clone().unwrap_or_default();
            let row = Row {
                rank: String::new(),
                device_href: device_page(&dm),
                device_model: dm,
                backend: c.key.backend.clone(),
                device: c.key.device.clone(),
                threads: c.key.threads,
                signer: e.signer.clone().or(e.key_id.clone()).unwrap_or_default(),
                decode: match c.metrics.get(DECODE_TPS.key).and_then(|m| m.summary.median_ci95) {
                    Some([lo, hi]) => format!("{} ({lo:.1}–{hi:.1})", fmt(c, DECODE_TPS.key, 1)),
                    None => fmt(c, DECODE_TPS.key, 1),
                },
                prefill: fmt(c, PREFILL_TPS.key, 1),
                ttft: fmt(c, TTFT_MS.key, 2),
                ram: fmt(c, PEAK_RSS_MIB.key, 0),
                energy: fmt(c, DECODE_J_PER_TOKEN.key, 4),
                kld: fmt(c, KLD_MEAN.key, 5),
                tier: e.tier.label(),
                why: why.clone(),
                href: page_of(&e.rel),
                decode_value: c.median(DECODE_TPS.key).unwrap_or(0.0),
                decode_ci: c.metrics.get(DECODE_TPS.key).and_then(|m| m.summary.median_ci95),
                prefill_value: c.median(PREFILL_TPS.key).unwrap_or(0.0),
            };
            boards
                .entry((model_name(&sha), r.manifest.suite.name.clone()))
                .or_default()
                .entry(c.key.workload.clone())
                .or_default()
                .push(row);
        }
    }
    let mut board_links = Vec::new();
    for ((model, suite), workloads) in &mut boards {
        let base = format!("board-{}-{}", slug(model), slug(suite));
        let (href, href_all) = (format!("{base}.html"), format!("{base}-all.html"));
        let mut counts = (0, 0);
        for all in [false, true] {
            let mut ws = Vec::new();
            for (w, rows) in workloads.iter_mut() {
                rows.sort_by(|a, b| {
                    b.decode_value
                        .total_cmp(&a.decode_value)
                        .then(a.device_model.cmp(&b.device_model))
                        .then(a.href.cmp(&b.href))
                });
                let shown: Vec<&Row> =
                    rows.iter().filter(|r| all || Tier::parse(r.tier).is_some_and(|t| t >= RANKED_FROM)).collect();
                if shown.is_empty() {
                    continue;
                }
                let ranked: Vec<&&Row> = shown.iter().filter(|r| r.tier != "T0").collect();
                let mut by_prefill: Vec<&&&Row> = ranked.iter().collect();
                by_prefill.sort_by(|a, b| b.prefill_value.total_cmp(&a.prefill_value).then(a.href.cmp(&b.href)));
                let mut n = 0;
                let rows_ctx: Vec<minijinja::Value> = shown
                    .iter()
                    .map(|r| {
                        let rank = if r.tier == "T0" {
                            "—".to_string()
                        } else {
                            n += 1;
                            n.to_string()
                        };
                        let prank = by_prefill
                            .iter()
                            .position(|x| std::ptr::eq(***x, *r))
                            .map_or("—".into(), |p| (p + 1).to_string());
                        let mut v = serde_json::to_value(r).expect("row");
                        v["rank"] = rank.into();
                        v["prefill"] = format!("{} ({prank})", r.prefill).into();
                        minijinja::Value::from_serialize(&v)
                    })
                    .collect();
                // plotters draws the first bar at the bottom: reversed, the chart reads top-down like the table.
                let bars: Vec<charts::Bar> = ranked
                    .iter()
                    .rev()
                    .map(|r| charts::Bar {
                        label: format!("{} · {} t{} · {} [{}]", r.device_model, r.backend, r.threads, r.signer, r.tier),
                        series: 0,
                        value: r.decode_value,
                        ci: r.decode_ci,
                    })
                    .collect();
                let svg = if bars.is_empty() {
                    None
                } else {
                    charts::bars("decode tokens/s (median, 95% CI)", "tok/s", &["decode"], &bars).ok()
                };
                if all {
                    counts.1 += shown.len();
                } else {
                    counts.0 += shown.len();
                }
                ws.push(minijinja::context! { name => w, rows => rows_ctx, svg => svg });
            }
            let (name, other) = if all { (&href_all, &href) } else { (&href, &href_all) };
            let html = render(
                "board.html",
                format!("{model} · {suite}"),
                minijinja::context! { model, suite, all, other, workloads => ws, version },
            )?;
            files.insert(name.clone(), html);
        }
        board_links.push(minijinja::context! { model, suite, href, href_all, ranked => counts.0, all => counts.1 });
    }

    // Device models.
    let mut devices: BTreeMap<String, Vec<&Entry>> = BTreeMap::new();
    for e in v.entries.iter().filter(|e| e.tier != Tier::Rejected) {
        if let Some(d) = &e.device_model {
            devices.entry(d.clone()).or_default().push(e);
        }
    }
    let sub_ctx = |e: &Entry| {
        minijinja::context! {
            rel => e.rel, href => e.results.as_ref().map(|_| page_of(&e.rel)), tier => e.tier.label(),
            signer => e.signer.clone().or(e.key_id.clone()).unwrap_or_default(),
            device => e.device_model.clone().unwrap_or_default(), reasons => e.reasons,
        }
    };
    let mut device_links = Vec::new();
    for (name, subs) in &devices {
        let mut spread: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for e in subs.iter().filter(|e| e.tier >= Tier::T1) {
            let Some(r) = &e.results else { continue };
            for c in r.cells.iter().filter(|c| e.cells.iter().any(|x| x.key == c.key && x.ranked)) {
                if let Some(x) = c.median(DECODE_TPS.key) {
                    let sha = crate::model_sha(r, &c.key.model).to_string();
                    spread.entry((model_name(&sha), c.key.label())).or_default().push(x);
                }
            }
        }
        let spread: Vec<minijinja::Value> = spread
            .into_iter()
            .map(|((model, cell), mut xs)| {
                xs.sort_by(f64::total_cmp);
                let (lo, hi) = (xs[0], xs[xs.len() - 1]);
                minijinja::context! {
                    model, cell, n => xs.len(), min => format!("{lo:.1}"), max => format!("{hi:.1}"),
                    median => format!("{:.1}", edgebench_stats::median(&xs)), ratio => format!("{:.3}", hi / lo),
                }
            })
            .collect();
        let subs_ctx: Vec<minijinja::Value> = subs.iter().map(|e| sub_ctx(e)).collect();
        let page = device_page(name);
        files.insert(
            page.clone(),
            render(
                "device.html",
                name.clone(),
                minijinja::context! { name, submissions => subs_ctx, spread, version },
            )?,
        );
        device_links.push(minijinja::context! { name, href => page, n => subs.len() });
    }

    // Submissions.
    for e in v.entries.iter() {
        let Some(r) = &e.results else { continue };
        let page = page_of(&e.rel);
        let report = page.replacen("sub-", "report-", 1);
        let cells: Vec<minijinja::Value> = e
            .cells
            .iter()
            .map(|c| minijinja::context! { label => format!("{} ({})", c.key.label(), c.key.model), ranked => c.ranked, why => c.reasons.join("; ") })
            .collect();
        let dm = e.device_model.clone().unwrap_or_default();
        let html = render(
            "submission.html",
            e.rel.clone(),
            minijinja::context! {
                rel => e.rel, tier => e.tier.label(), meaning => e.tier.meaning(), reasons => e.reasons, cells,
                signer => e.signer.clone().unwrap_or_else(|| "an unlisted key".into()), key_id => e.key_id,
                sha => e.results_sha256, device => dm, device_href => device_page(&dm), report, version,
            },
        )?;
        files.insert(page, html);
        files.insert(report, edgebench_reports::html::html_report(std::slice::from_ref(r)));
    }

    let counts = v.counts();
    let submissions: Vec<minijinja::Value> = v.entries.iter().map(sub_ctx).collect();
    let reproductions: Vec<minijinja::Value> = v
        .reproductions
        .iter()
        .map(|r| minijinja::context! { rel => r.rel, reproduces => r.reproduces, ok => r.ok, reasons => r.reasons })
        .collect();
    files.insert(
        "index.html".into(),
        render(
            "index.html",
            "Boards".into(),
            minijinja::context! { counts, boards => board_links, devices => device_links, submissions, reproductions, version },
        )?,
    );
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    for (name, text) in &files {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(io_err(&p))?;
    }
    Ok(files.into_keys().collect())
}
