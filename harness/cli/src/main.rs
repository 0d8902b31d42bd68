//! The `edgebench` command: thin `main`, exit codes that mean something (0 pass, 1 regression, 2 error).

mod backends;
mod build_info;
mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Behave like other Unix tools when piped into `head`: exit quietly on a closed pipe instead of panicking.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A file-size limit (`ulimit -f`) reached while writing results is a write error reported with the file's name
    // and every figure kept, like a full disk, not a kill by SIGXFSZ.
    // SAFETY: as above.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let args = cli::Cli::parse();
    match commands::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            // Errors quote names and text from files: shown, never sent to the terminal as control sequences.
            eprintln!("error: {}", edgebench_core::text::terminal_safe(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}
