//! The `kaws` command: parse, call one operation, report.

mod cli;
mod commands;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {}", e.message());
            if let Some(hint) = e.hint() {
                let _ = writeln!(err, "  help: {hint}");
            }
            ExitCode::from(e.kind().exit_code())
        }
    }
}
