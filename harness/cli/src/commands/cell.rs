//! `edgebench cell`: the child process of one cell or drift reference. Reads its job from stdin, speaks JSON lines
//! on stdout.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use edgebench_runner::protocol::{Event, Job};

pub fn cell() -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("reading the job from stdin")?;
    let job: Job = serde_json::from_str(&text).context("parsing the job (JSON on stdin)")?;
    let name = match &job {
        Job::Cell(c) => &c.key.backend,
        Job::Reference(r) => &r.backend,
    };
    let mut out = std::io::stdout().lock();
    let backend = match crate::backends::get(name) {
        Ok(b) => b,
        Err(e) => {
            let line = serde_json::to_string(&Event::Error { message: format!("{e:#}") })?;
            println!("{line}");
            return Ok(ExitCode::from(2));
        }
    };
    let code = edgebench_runner::child::run_job(&job, backend.as_ref(), &mut out);
    Ok(ExitCode::from(code as u8))
}
