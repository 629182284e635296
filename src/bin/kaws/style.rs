//! Colour, only on a terminal and never with NO_COLOR.

use std::io::IsTerminal;
use std::sync::OnceLock;

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
    })
}

/// A state word, red when failed, yellow when a warning.
pub fn state(word: &str, failed: bool, warning: bool) -> String {
    if !enabled() {
        return word.to_string();
    }
    match (failed, warning) {
        (true, _) => format!("\x1b[31m{word}\x1b[0m"),
        (false, true) => format!("\x1b[33m{word}\x1b[0m"),
        _ => format!("\x1b[32m{word}\x1b[0m"),
    }
}

/// Whether stderr may be coloured.
pub fn stderr_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_quiet(q: bool) {
    QUIET.store(q, std::sync::atomic::Ordering::Relaxed);
}

/// Informational output (what was written, what to do next): not with -q.
pub fn info(args: std::fmt::Arguments<'_>) {
    if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        out(args);
    }
}

#[macro_export]
macro_rules! infoln {
    ($($t:tt)*) => { $crate::style::info(format_args!("{}\n", format_args!($($t)*))) };
}

/// Write a line to stdout. A closed pipe (`kaws ... | head`) ends the
/// process quietly with the status a SIGPIPE would give, instead of the
/// panic `println!` would raise.
pub fn out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if o.write_fmt(args).and_then(|_| o.flush()).is_err() {
        std::process::exit(141);
    }
}

#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => { $crate::style::out(format_args!("{}\n", format_args!($($t)*))) };
}

#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::style::out(format_args!($($t)*)) };
}
