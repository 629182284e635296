//! The `kaws` command: parse, call one operation, report.

mod cli;
mod commands;
mod style;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // No core dumps and no same-user ptrace while this process may hold a
    // decrypted key.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let cli = cli::Cli::parse();
    let level = match cli.global.verbose {
        0 => "kaws=warn",
        1 => "kaws=info",
        2 => "kaws=debug,info",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(style::stderr_enabled())
        .with_target(cli.global.verbose > 1)
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .init();
    // kubectl shows an exec plugin's stderr among its own lines: one line,
    // no colour, saying who speaks.
    let plugin = matches!(
        cli.command,
        cli::Command::Admin(commands::admin::AdminCommand::Credential(_))
    );
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) if plugin => {
            // Escaped first, as every message is (M3): a file name's line
            // break or escape sequence is shown, not obeyed.
            let one_line = |s: &str| {
                kaws::text::escape(s)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut line = format!("kaws: error: {}", one_line(e.message()));
            if let Some(hint) = e.hint() {
                line.push_str(&format!("; help: {}", one_line(hint)));
            }
            let _ = writeln!(std::io::stderr().lock(), "{line}");
            ExitCode::from(e.kind().exit_code())
        }
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let (red, cyan, reset) = if style::stderr_enabled() {
                ("\x1b[1;31m", "\x1b[1;36m", "\x1b[0m")
            } else {
                ("", "", "")
            };
            // Messages quote file names and values from the repository:
            // nothing in them may drive the terminal.
            let _ = writeln!(err, "{red}error:{reset} {}", safe_lines(e.message()));
            // The chain of causes, each unless the message already says it.
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                let text = c.to_string();
                if !e.message().contains(&text) {
                    let _ = writeln!(err, "  caused by: {}", safe_lines(&text));
                }
                cause = c.source();
            }
            if let Some(hint) = e.hint() {
                let _ = writeln!(err, "  {cyan}help:{reset} {}", safe_lines(hint));
            }
            ExitCode::from(e.kind().exit_code())
        }
    }
}

/// The message escaped by [`kaws::text::escape`]: messages are one line,
/// so a line break in one can only come from a file and is shown escaped.
fn safe_lines(s: &str) -> String {
    kaws::text::escape(s).into_owned()
}
