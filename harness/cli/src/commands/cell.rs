//! `edgebench cell`: the child process of one cell. Reads its spec from stdin, speaks JSON lines on stdout.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use edgebench_runner::protocol::{CellSpec, Event};

pub fn cell() -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("reading the cell spec from stdin")?;
    let spec: CellSpec = serde_json::from_str(&text).context("parsing the cell spec (JSON on stdin)")?;
    let mut out = std::io::stdout().lock();
    let backend = match crate::backends::get(&spec.key.backend) {
        Ok(b) => b,
        Err(e) => {
            let line = serde_json::to_string(&Event::Error { message: format!("{e:#}") })?;
            println!("{line}");
            return Ok(ExitCode::from(2));
        }
    };
    let code = edgebench_runner::child::run(&spec, backend.as_ref(), &mut out);
    Ok(ExitCode::from(code as u8))
}
