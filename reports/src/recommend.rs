//! `edgebench recommend`'s answer rendered: a terminal text, Markdown, and self-contained HTML (minijinja with HTML
//! auto-escaping, the speed-against-drift chart of the feasible candidates). JSON is the serialized
//! [`Recommendation`] itself.

use edgebench_core::recommend::{Bound, Candidate, Evidence, Recommendation, Verdict};
use serde::Serialize;

use crate::charts::{self, Point};
use crate::text::terminal_safe;

const TEMPLATE: &str = include_str!("../templates/recommend.html");

fn fig(b: &Option<Bound>, digits: usize) -> String {
    b.as_ref().map_or("?".into(), |b| format!("{:.digits$}", b.value))
}

fn budget_line(r: &Recommendation) -> String {
    let b = &r.budget;
    let mut parts = Vec::new();
    if let Some(x) = b.min_decode_tps {
        parts.push(format!("decode ≥ {x} t/s"));
    }
    if let Some(x) = b.max_ttft_ms {
        parts.push(format!("TTFT ≤ {x} ms"));
    }
    if let Some(x) = b.ram_mib {
        parts.push(format!("memory ≤ {x} MiB"));
    }
    if let Some(x) = b.ctx {
        parts.push(format!("KV cache for {x} tokens"));
    }
    if let Some(x) = b.max_kld {
        parts.push(format!("KLD ≤ {x}"));
    }
    if let Some(x) = b.max_j_per_token {
        parts.push(format!("decode energy ≤ {x} J/token"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn verdict_text(c: &Candidate) -> String {
    let mut out = Vec::new();
    for k in &c.checks {
        match &k.verdict {
            Verdict::Pass => {}
            Verdict::Fail { by } => out.push(format!("{}: fail, {by}", k.constraint)),
            Verdict::Unknown { why } => out.push(format!("{}: unknown ({why})", k.constraint)),
        }
    }
    out.join("; ")
}

fn role(r: &Recommendation, i: usize) -> &'static str {
    if r.pick == Some(i) {
        "PICK"
    } else if r.front.contains(&i) {
        "front"
    } else if r.candidates[i].feasible() {
        "feasible"
    } else {
        "rejected"
    }
}

fn evidence(c: &Candidate) -> String {
    match &c.evidence {
        Evidence::Here => "here".into(),
        Evidence::Elsewhere { device } => format!("elsewhere: {device}"),
    }
}

/// The answer for a terminal.
pub fn text(r: &Recommendation) -> String {
    let mut t = String::new();
    t.push_str(&format!("recommendation for {} (objective: {})\n", r.here, r.objective.name()));
    t.push_str(&format!(
        "budget: {}{}\n",
        budget_line(r),
        r.workload.as_ref().map_or(String::new(), |w| format!("; workload {w} only"))
    ));
    for (i, f) in r.inputs.iter().enumerate() {
        t.push_str(&format!(
            "input [{}] {} (sha256 {}, run {}, {})\n",
            i + 1,
            f.path,
            &f.sha256[..16.min(f.sha256.len())],
            f.run_id,
            f.device
        ));
    }
    t.push('\n');
    match r.pick {
        Some(p) => {
            let c = &r.candidates[p];
            t.push_str(&format!("PICK: {}\n", c.label));
            for line in &r.trade_offs {
                t.push_str(&format!("  {line}\n"));
            }
            t.push_str(&format!("  reproduce: {}\n", c.command));
        }
        None => {
            t.push_str("PICK: none\n");
            for line in &r.trade_offs {
                t.push_str(&format!("  {line}\n"));
            }
        }
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "#",
        "candidate",
        "weights",
        "measured",
        "decode t/s ↓",
        "TTFT ms ↑",
        "memory MiB ↑",
        "KLD ↑",
        "J/token ↑",
        "role",
    ]);
    for (i, c) in r.candidates.iter().enumerate() {
        table.add_row([
            (i + 1).to_string(),
            c.label.clone(),
            c.weights.clone(),
            evidence(c),
            fig(&c.decode_tps, 1),
            fig(&c.ttft_ms, 1),
            fig(&c.ram_mib, 1),
            fig(&c.kld, 4),
            fig(&c.j_per_token, 3),
            role(r, i).into(),
        ]);
    }
    t.push_str(&format!("\n{table}\n"));
    t.push_str("figures on their unfavourable bound (↓ lower 95% limit, ↑ upper); ? = not measured, never a pass\n");
    let rejected: Vec<&Candidate> = r.candidates.iter().filter(|c| !c.feasible()).collect();
    if !rejected.is_empty() {
        t.push_str("\nrejected:\n");
        for c in rejected {
            t.push_str(&format!("  {}: {}\n", c.label, verdict_text(c)));
        }
    }
    if !r.changes.is_empty() {
        t.push_str("\nwhat would change the pick:\n");
        for c in &r.changes {
            t.push_str(&format!("  {}: {}\n", c.change, c.then));
        }
    }
    if !r.missing.is_empty() {
        t.push_str("\nnot measured (--measure-missing prints the runs, --run makes them):\n");
        for m in &r.missing {
            t.push_str(&format!("  {}\n", m.what));
            if let Some(c) = &m.command {
                t.push_str(&format!("    {c}\n"));
            }
        }
    }
    if let Some(p) = r.pick {
        let c = &r.candidates[p];
        t.push_str("\nhow the pick's figures were taken:\n");
        for (name, b) in [
            ("decode", &c.decode_tps),
            ("TTFT", &c.ttft_ms),
            ("memory", &c.ram_mib),
            ("KLD", &c.kld),
            ("energy", &c.j_per_token),
        ] {
            match b {
                Some(b) => t.push_str(&format!("  {name}: {}\n", b.how)),
                None => {
                    let key = match name {
                        "decode" => "decode_tps",
                        "TTFT" => "ttft_ms",
                        "memory" => "ram_mib",
                        "KLD" => "kld",
                        _ => "j_per_token",
                    };
                    t.push_str(&format!(
                        "  {name}: unknown ({})\n",
                        c.unknown.get(key).map_or("not measured", String::as_str)
                    ));
                }
            }
        }
    }
    terminal_safe(&t)
}

fn md(s: &str) -> String {
    terminal_safe(s).replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;")
}

/// The answer as Markdown (a pull-request comment, a wiki page).
pub fn markdown(r: &Recommendation) -> String {
    let mut t = format!("### edgebench recommend: {}\n\n", md(&r.here));
    t.push_str(&format!("Objective **{}**; budget: {}.\n\n", r.objective.name(), md(&budget_line(r))));
    match r.pick {
        Some(p) => {
            t.push_str(&format!("**Pick: {}**\n\n", md(&r.candidates[p].label)));
            for line in &r.trade_offs {
                t.push_str(&format!("- {}\n", md(line)));
            }
            t.push_str(&format!("\nReproduce: `{}`\n\n", r.candidates[p].command.replace('`', "'")));
        }
        None => {
            t.push_str("**Pick: none**\n\n");
            for line in &r.trade_offs {
                t.push_str(&format!("- {}\n", md(line)));
            }
            t.push('\n');
        }
    }
    t.push_str("| # | candidate | weights | measured | decode t/s ↓ | TTFT ms ↑ | memory MiB ↑ | KLD ↑ | J/token ↑ | role | why not |\n");
    t.push_str("|---:|---|---|---|---:|---:|---:|---:|---:|---|---|\n");
    for (i, c) in r.candidates.iter().enumerate() {
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            i + 1,
            md(&c.label),
            md(&c.weights),
            md(&evidence(c)),
            fig(&c.decode_tps, 1),
            fig(&c.ttft_ms, 1),
            fig(&c.ram_mib, 1),
            fig(&c.kld, 4),
            fig(&c.j_per_token, 3),
            role(r, i),
            md(&verdict_text(c))
        ));
    }
    t.push_str("\nFigures on their unfavourable bound (↓ lower 95% limit, ↑ upper); ? = not measured, never a pass.\n");
    if !r.changes.is_empty() {
        t.push_str("\nWhat would change the pick:\n\n");
        for c in &r.changes {
            t.push_str(&format!("- `{}`: {}\n", c.change, md(&c.then)));
        }
    }
    if !r.missing.is_empty() {
        t.push_str("\nNot measured:\n\n");
        for m in &r.missing {
            t.push_str(&format!("- {}", md(&m.what)));
            if let Some(c) = &m.command {
                t.push_str(&format!(": `{}`", c.replace('`', "'")));
            }
            t.push('\n');
        }
    }
    t.push_str("\nInputs:\n\n");
    for f in &r.inputs {
        t.push_str(&format!("- {} (sha256 `{}`, run {})\n", md(&f.path), f.sha256, md(&f.run_id)));
    }
    t
}

#[derive(Serialize)]
struct Row {
    n: usize,
    label: String,
    weights: String,
    evidence: String,
    decode: String,
    ttft: String,
    ram: String,
    kld: String,
    energy: String,
    role: &'static str,
    why: String,
}

/// The answer as one self-contained HTML page with the speed-against-drift chart of the feasible candidates.
pub fn html(r: &Recommendation) -> String {
    let feasible: Vec<&Candidate> = r.candidates.iter().filter(|c| c.feasible()).collect();
    let points: Vec<Point> = feasible
        .iter()
        .filter_map(|c| {
            Some(Point { label: c.label.clone(), x: c.kld.as_ref()?.value, y: c.decode_tps.as_ref()?.value })
        })
        .collect();
    let unplotted: Vec<String> =
        feasible.iter().filter(|c| c.kld.is_none() || c.decode_tps.is_none()).map(|c| c.label.clone()).collect();
    let (svg, chart_error) = if points.is_empty() {
        (None, Some("no feasible candidate has both decode speed and drift measured".to_string()))
    } else {
        match charts::pareto(
            "Feasible candidates: decode speed against drift",
            "KLD (mean + standard error, nats)",
            "decode t/s (lower 95% limit)",
            &points,
        ) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        }
    };
    let rows: Vec<Row> = r
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| Row {
            n: i + 1,
            label: c.label.clone(),
            weights: c.weights.clone(),
            evidence: evidence(c),
            decode: fig(&c.decode_tps, 1),
            ttft: fig(&c.ttft_ms, 1),
            ram: fig(&c.ram_mib, 1),
            kld: fig(&c.kld, 4),
            energy: fig(&c.j_per_token, 3),
            role: role(r, i),
            why: verdict_text(c),
        })
        .collect();
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("recommend.html", TEMPLATE).expect("the recommend template parses");
    env.get_template("recommend.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                here => r.here,
                objective => r.objective.name(),
                budget => budget_line(r),
                pick => r.pick.map(|p| r.candidates[p].label.clone()),
                command => r.pick.map(|p| r.candidates[p].command.clone()),
                trade_offs => r.trade_offs,
                rows,
                changes => r.changes,
                missing => r.missing,
                inputs => r.inputs,
                svg,
                chart_error,
                unplotted,
            })
        })
        .expect("the recommend template renders every answer")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use edgebench_core::recommend::{
        Bound, Budget, BudgetChange, Candidate, Check, Evidence, Input, Missing, Objective, Recommendation, Verdict,
    };

    fn candidate(label: &str, decode: f64, kld: Option<f64>, checks: Vec<Check>) -> Candidate {
        let b = |value: f64| Some(Bound { value, how: "chat: lower 95% limit of the median".into(), interval: None });
        Candidate {
            label: label.into(),
            model: "m".into(),
            model_sha256: "00".into(),
            weights: "Q4_1".into(),
            backend: "native".into(),
            device: "cpu".into(),
            threads: 2,
            options: BTreeMap::new(),
            evidence: Evidence::Here,
            cells: vec![(0, "chat".into(), "ok".into())],
            decode_tps: b(decode),
            ttft_ms: b(12.0),
            ram_mib: b(150.0),
            kld: kld.and_then(b),
            j_per_token: None,
            unknown: [("j_per_token".to_string(), "no meter".to_string())].into(),
            checks,
            command: format!("edgebench run --suite quick --model m --backend {label}"),
            run: Default::default(),
        }
    }

    fn answer() -> Recommendation {
        let pass = Check { constraint: "KLD ≤ 0.05".into(), flag: "--max-kld".into(), verdict: Verdict::Pass };
        let fail = Check {
            constraint: "KLD ≤ 0.05".into(),
            flag: "--max-kld".into(),
            verdict: Verdict::Fail { by: "0.386 > 0.05 (7.7× the limit)".into() },
        };
        let unknown = Check {
            constraint: "KLD ≤ 0.05".into(),
            flag: "--max-kld".into(),
            verdict: Verdict::Unknown { why: "no drift check <b>|x".into() },
        };
        Recommendation {
            inputs: vec![Input {
                path: "r\x1b[2J.json".into(),
                sha256: "ab".repeat(32),
                run_id: "r1".into(),
                device: "EPYC".into(),
            }],
            here: "AMD EPYC, 2 CPUs, 24 GiB".into(),
            budget: Budget { max_kld: Some(0.05), ..Budget::default() },
            objective: Objective::Speed,
            workload: None,
            candidates: vec![
                candidate("m native <b>|pick", 500.0, Some(0.003), vec![pass.clone()]),
                candidate("m llamacpp", 200.0, Some(0.0029), vec![pass]),
                candidate("m@q4_0 native", 340.0, Some(0.386), vec![fail]),
                candidate("m tract", 60.0, None, vec![unknown]),
            ],
            front: vec![0, 1],
            pick: Some(0),
            trade_offs: vec!["pick for speed: m native".into(), "vs m llamacpp: 2.5× faster decode".into()],
            changes: vec![BudgetChange { change: "--max-kld 0.387".into(), then: "picks m@q4_0 native".into() }],
            missing: vec![Missing {
                what: "kld unknown for m tract".into(),
                command: Some("edgebench run … --drift short".into()),
                argv: Vec::new(),
            }],
        }
    }

    #[test]
    fn text_snapshot() {
        insta::assert_snapshot!(super::text(&answer()));
    }

    #[test]
    fn markdown_snapshot() {
        insta::assert_snapshot!(super::markdown(&answer()));
    }

    #[test]
    fn html_snapshot() {
        insta::assert_snapshot!(super::html(&answer()));
    }

    /// Opens the recommendation page in headless Chromium (as the report's render test does): it renders, keeps its
    /// chart, and logs nothing to the console.
    #[test]
    #[ignore = "needs /usr/bin/chromium; .ci/run installs it and runs this with --include-ignored"]
    fn html_renders_in_headless_chromium() {
        let shown = crate::fixtures::render_in_chromium(&super::html(&answer()), "1200,1400");
        assert_eq!(shown.dom.matches("<svg").count(), 1, "the chart in the rendered DOM");
        assert!(shown.dom.contains("Pick: m native &lt;b&gt;|pick"), "{}", shown.dom);
        assert!(shown.console.is_empty(), "console messages: {:?}", shown.console);
        assert!(
            shown.png.starts_with(b"\x89PNG") && shown.png.len() > 20_000,
            "screenshot of {} bytes",
            shown.png.len()
        );
    }

    #[test]
    fn renderers_make_strings_from_files_inert() {
        let r = answer();
        let (t, md, html) = (super::text(&r), super::markdown(&r), super::html(&r));
        for out in [&t, &md] {
            assert!(!out.contains('\x1b') && out.contains("r\\u{1b}[2J.json"), "{out}");
        }
        assert!(md.contains("&lt;b&gt;\\|pick"), "{md}");
        // Outside code spans (where Markdown shows text as is) nothing from a file is markup.
        let outside: String = md.split('`').step_by(2).collect();
        assert!(!outside.contains("<b>"), "{md}");
        assert!(html.contains("&lt;b&gt;|pick") && !html.contains("<b>|"), "{html}");
        assert_eq!(html.matches("<svg").count(), 1, "the chart of the feasible candidates");
        assert!(html.contains("class=\"pick\"") && html.contains("no drift check &lt;b&gt;"), "{html}");
    }
}
