//! One module per command group; each holds its clap arguments and a short
//! `run` that calls one library operation.

pub mod admin;
pub mod cluster;
pub mod init;

use std::path::PathBuf;
use std::process::ExitCode;

use kaws::layout::Repo;
use kaws::Result;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
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
