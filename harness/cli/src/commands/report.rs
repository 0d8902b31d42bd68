//! `edgebench report`: one or more results files rendered as a table, Markdown, HTML with charts, CSV or Parquet.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use edgebench_reports::export::{export, Export};
use edgebench_reports::{terminal_table_with, Width};

use crate::cli::{RenderFormat, ReportArgs};

/// Renders `args.results` in `args.format`.
pub fn report(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let runs = super::fleet::read_runs(&args.results)?;
    if let Some(out) = &args.out {
        let inputs: Vec<_> = args.results.iter().map(|p| ("results file".to_string(), p.clone())).collect();
        super::refuse_input_as_output("--out", out, &inputs)?;
    }
    let to_file = |default: &str, bytes: &str| -> anyhow::Result<PathBuf> {
        let path = args.out.clone().unwrap_or_else(|| PathBuf::from(default));
        std::fs::write(&path, bytes).with_context(|| format!("writing --out {}", path.display()))?;
        Ok(path)
    };
    match args.format {
        RenderFormat::Table => {
            let width = if args.wide { Width::Wide } else { Width::Compact };
            let text: String = runs.iter().map(|r| terminal_table_with(r, width)).collect::<Vec<_>>().join("\n");
            match &args.out {
                Some(_) => println!("{}", to_file("", &text)?.display()),
                None => print!("{text}"),
            }
        }
        RenderFormat::Markdown => {
            let md = edgebench_reports::markdown::markdown_report(&runs);
            match &args.out {
                Some(_) => println!("{}", to_file("", &md)?.display()),
                None => print!("{md}"),
            }
        }
        RenderFormat::Html => {
            let path = to_file("report.html", &edgebench_reports::html::html_report(&runs))?;
            println!("{}", path.display());
        }
        RenderFormat::Csv | RenderFormat::Parquet => {
            let (fmt, default) = match args.format {
                RenderFormat::Csv => (Export::Csv, "report.csv"),
                _ => (Export::Parquet, "report.parquet"),
            };
            let path = args.out.clone().unwrap_or_else(|| PathBuf::from(default));
            let (bytes, n) = export(&runs, fmt).map_err(|e| anyhow::anyhow!("--format {:?}: {e}", args.format))?;
            std::fs::write(&path, bytes).with_context(|| format!("writing --out {}", path.display()))?;
            eprintln!("{n} rows");
            println!("{}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
