//! The command tree. Each group's arguments live in `commands/<group>.rs`;
//! flags shared by many commands are declared once here.

use clap::{Args, Parser, Subcommand};

use crate::commands::{admin::AdminCommand, cluster::ClusterCommand, init::InitArgs};

/// Create and manage Kubernetes clusters on AWS with Terraform, with a
/// public key infrastructure whose private keys are encrypted by AWS KMS.
#[derive(Parser, Debug)]
#[command(name = "kaws", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// The AWS profile to use (default: AWS_PROFILE, then the default profile)
    #[arg(
        long,
        global = true,
        env = "AWS_PROFILE",
        hide_env_values = true,
        value_name = "PROFILE"
    )]
    pub profile: Option<String>,
    /// The AWS region (default: the cluster's settings, then AWS_REGION)
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// More logging on stderr: -v info, -vv debug, -vvv trace (never key material)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only results and errors
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new kaws repository
    Init(InitArgs),
    /// Create and manage clusters
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Give administrators access to a cluster
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print a shell completion script (bash, elvish, fish, powershell, zsh)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the kaws(1) man page (roff)
    Man,
    /// Print the command reference as Markdown (docs/reference/commands.md)
    #[command(hide = true)]
    Reference,
}

/// Machine-readable or human output.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}
