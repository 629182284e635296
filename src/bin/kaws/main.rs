//! The `kaws` command: parse, call one operation, report.

mod cli;
mod commands;
mod style;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let (red, cyan, reset) = if style::stderr_enabled() {
                ("\x1b[1;31m", "\x1b[1;36m", "\x1b[0m")
            } else {
                ("", "", "")
            };
            let _ = writeln!(err, "{red}error:{reset} {}", e.message());
            if let Some(hint) = e.hint() {
                let _ = writeln!(err, "  {cyan}help:{reset} {hint}");
            }
            ExitCode::from(e.kind().exit_code())
        }
    }
}
