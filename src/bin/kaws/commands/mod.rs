//! One module per command group; each holds its clap arguments and a short
//! `run` that calls one library operation.

pub mod admin;
pub mod cluster;
pub mod init;
pub mod seal;

use std::path::PathBuf;
use std::process::ExitCode;

use kaws::layout::Repo;
use kaws::Result;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<ExitCode> {
    crate::style::set_quiet(cli.global.quiet);
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Through a buffer and `out!`: clap_complete writing to stdout
            // itself panics on a closed pipe (`kaws completions bash | head`).
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "kaws", &mut buf);
            crate::out!("{}", String::from_utf8_lossy(&buf));
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| kaws::Error::io("render", &PathBuf::from("kaws.1"), e))?;
            crate::out!("{}", String::from_utf8_lossy(&out));
            Ok(ExitCode::SUCCESS)
        }
        Command::Reference => {
            crate::out!("{}", reference());
            Ok(ExitCode::SUCCESS)
        }
        Command::Init(args) => init::run(args),
        Command::Cluster(cmd) => cluster::run(cmd, &cli.global),
        Command::Admin(cmd) => admin::run(cmd, &cli.global),
    }
}

/// The repository containing the current directory.
pub fn current_repo() -> Result<Repo> {
    let cwd = std::env::current_dir()
        .map_err(|e| kaws::Error::io("read the current directory", &PathBuf::from("."), e))?;
    Repo::discover(&cwd)
}

impl crate::cli::GlobalArgs {
    pub fn aws(&self) -> kaws::kms::AwsOptions {
        kaws::kms::AwsOptions {
            profile: self.profile.clone().filter(|p| !p.is_empty()),
            region: self.region.clone(),
        }
    }
}

/// The command reference, generated from the CLI definition itself; a test
/// fails when docs/reference/commands.md disagrees with it.
pub fn reference() -> String {
    fn walk(cmd: &mut clap::Command, path: &str, out: &mut String) {
        let name = if path.is_empty() {
            cmd.get_name().to_string()
        } else {
            format!("{path} {}", cmd.get_name())
        };
        if cmd.is_hide_set() {
            return;
        }
        out.push_str(&format!("\n## {name}\n\n```text\n"));
        let help = cmd.render_long_help().to_string();
        for line in help.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str("```\n");
        let subs: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        for s in subs {
            if s == "help" {
                continue;
            }
            if let Some(sub) = cmd.find_subcommand_mut(&s) {
                walk(sub, &name, out);
            }
        }
    }
    let mut cmd = <Cli as clap::CommandFactory>::command()
        .term_width(100)
        .max_term_width(100);
    cmd.build();
    let mut out = String::from(
        "# Command reference\n\nGenerated from kaws' own command-line definition by `kaws reference`; \
a test fails when this page and `--help` disagree. Exit codes: [exit-codes.md](exit-codes.md).\n",
    );
    walk(&mut cmd, "", &mut out);
    out
}

/// Pretty JSON for `--output json`; kaws' reports always serialize, but a
/// failure is an error, not a panic.
pub fn to_json(value: &impl serde::Serialize) -> kaws::Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| {
        kaws::error::Error::new(
            kaws::error::ErrorKind::Io,
            format!("could not write the JSON output: {e}"),
        )
    })
}
