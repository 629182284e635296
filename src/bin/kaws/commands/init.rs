use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kaws::ops::{self, RepoInit};
use kaws::Result;

/// Create a new kaws repository in the directory NAME.
///
/// The directory must not exist yet (an empty one is refused too). It
/// receives kaws.json (which marks the repository), .gitignore, clusters/
/// and terraform/ (the Terraform module of this version of kaws). Run `git init` in it
/// afterwards: a kaws repository is meant to be a git repository.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The directory to create
    pub name: PathBuf,
    /// Use this Terraform module source in each cluster's entry point instead
    /// of the module kaws writes into terraform/modules/kaws
    #[arg(long, value_name = "SOURCE")]
    pub terraform_source: Option<String>,
}

pub fn run(args: InitArgs) -> Result<ExitCode> {
    let path = ops::init(&RepoInit {
        path: args.name,
        terraform_source: args.terraform_source,
    })?;
    crate::infoln!("Created the kaws repository {}", path.display());
    crate::infoln!(
        "Next: cd {} && git init, then `kaws cluster init <CLUSTER> ...`",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
