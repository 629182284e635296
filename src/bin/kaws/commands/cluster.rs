use std::process::ExitCode;

use clap::{Args, Subcommand};
use kaws::layout::ClusterName;
use kaws::ops::{self, ClusterInit, ClusterTerraform};
use kaws::settings::{self, CaKey, ClusterSettings, KeyAlgorithm, Nat, Topology};
use kaws::terraform::Action;
use kaws::Result;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::commands::seal;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create a cluster's settings and PKI, every private key encrypted by KMS
    Init(Box<InitArgs>),
    /// Move the cluster's encrypted keys to another KMS key (this is NOT revocation)
    #[command(
        long_about = "Move every encrypted key of the cluster (the CA's and the \
components'; not the administrators', which are under their own KMS keys) to another \
KMS key, with KMS ReEncrypt: the plaintext never leaves KMS. The new key is recorded in \
terraform.tfvars.json.\n\nThis is not revocation: the private keys and certificates do \
not change, so anyone who ever had a decrypted key still has a working key. To replace \
the keys, renew the certificates with new keys."
    )]
    Reencrypt(ReencryptArgs),
    /// Show what Terraform would change (terraform plan)
    Plan(TerraformArgs),
    /// Create or update the cluster's AWS resources (terraform apply)
    Apply(TerraformArgs),
    /// Destroy the cluster's AWS resources (terraform destroy)
    Destroy(TerraformArgs),
    /// Print the Terraform entry point (main.tf.json) kaws writes for the cluster's settings
    #[command(
        long_about = "Print, on standard output, the Terraform entry point (main.tf.json) this kaws \
writes for the cluster's settings and the repository's module source: the file every \
Terraform command requires, byte for byte. Nothing is written. A cluster whose HCL main.tf \
an older kaws wrote has it replaced with main.tf.json by its next plan, apply or renew."
    )]
    EntryPoint(EntryPointArgs),
    /// Show the cluster's Terraform outputs: API endpoint, bastion, ids
    Output(OutputArgs),
    /// Update the Terraform state from AWS (terraform refresh)
    Refresh(TerraformArgs),
    /// Verify the cluster's PKI: chains, usages, names, expiry, keys, KMS key health, exposure
    #[command(long_about = "Verify the cluster's PKI.\n\n\
Every certificate must parse, chain to its own CA (the cluster, etcd or front-proxy CA) and \
carry the usages and names its role needs; every encrypted key must decrypt under its \
encryption context and match its certificate, and the encryption configuration must hold \
32-byte keys (skipped with --offline); a cluster made by an older kaws is told what to run; \
no plaintext private key (PEM or DER) may sit anywhere in the repository; each \
administrator's state is shown. Certificates that end within 30 days (--warn-days) are \
warnings.\n\n\
Unless --offline, the KMS keys are described too: the cluster's key and each \
administrator's (recorded in <admin>.kms.json), as enabled, disabled, pending-deletion (with \
the deletion date), not-found or unknown. A cluster key that is not enabled is a failure; an \
administrator's is a warning for them.\n\n\
Exits with status 6 when anything is invalid, expired or exposed, or the cluster's KMS key \
cannot be used. With --warn-days given, exits with status 8 when nothing fails but a \
certificate ends within that many days: a scheduled job can alert on it.")]
    Check(CheckArgs),
    /// Seal the cluster as it is now: record what a primary administrator approved, authenticated by KMS
    #[command(long_about = "Seal the cluster as it is now.\n\n\
The seal (clusters/<cluster>/seal.json) lists every file that shapes the cluster's trust or \
what Terraform runs, each with its SHA-256: the whole cluster directory (but Terraform's \
state and working data), everything under terraform/, and kaws.json; with who sealed, when, \
and a generation number. Their digest is encrypted by the cluster's KMS key under an \
encryption context of its own, so nobody who cannot encrypt with that key can forge it. \
Every privileged command (admin sign, cluster renew, reencrypt, plan, apply, destroy, \
refresh) opens the seal first and shows what changed since; it runs only over changes you \
approve, and seals again when it succeeds.\n\n\
This command shows what differs from the previous seal and asks before sealing (--yes on a \
script). Use it to approve changes you reviewed (a module edit, a settings change, removed \
files), or to seal a cluster made before kaws sealed. Commit seal.json with the rest.")]
    Seal(SealArgs),
    /// Re-issue the cluster's certificates (all but the CAs') from their CAs
    #[command(
        long_about = "Re-issue every certificate of the cluster except the CAs' \
(apiserver, node, etcd, etcd-client, front-proxy-client, controller-manager, scheduler, \
bootstrap), each from its existing CA, for another full lifetime. The key pairs are kept \
unless --new-keys is given, in which case new keys are generated and sealed with the \
cluster's KMS key, and the Secrets encryption configuration gets a new first key while its \
old keys stay after it. What a cluster made by an older kaws lacks (the etcd or front-proxy \
CA, the encryption configuration) is created, and main.tf.json and pki.auto.tfvars.json \
are written again (an HCL main.tf is replaced). All files change \
in one atomic swap. Apply the cluster afterwards so the servers receive the new files. \
Administrators renew with `kaws admin sign --renew`."
    )]
    Renew(RenewArgs),
    /// Print the key policy for the cluster's KMS key (JSON), from the certificate table
    #[command(
        long_about = "Print the key policy for the cluster's KMS key, as JSON, for \
`aws kms create-key --policy` or `aws kms put-key-policy`. It is built from the same \
certificate table as the module's IAM policies:\n\n\
- the account's IAM policies may grant use of the key: each server role reaches it only \
through its own IAM policy, which allows kms:Decrypt for that role's files alone;\n\
- the primary administrators (--administrator) may describe the key, and encrypt, decrypt \
and re-encrypt with it under this cluster's encryption context;\n\
- whatever IAM says, each key file can be decrypted only by the primary administrators and \
the server role that holds it, and ca-key.pem by the primary administrators alone.\n\n\
Nothing is sent to AWS, and no repository is needed: print it before `kaws cluster init`."
    )]
    KeyPolicy(KeyPolicyArgs),
}

#[derive(Args, Debug)]
pub struct KeyPolicyArgs {
    /// The cluster (its name goes into the encryption-context conditions and the server roles' names)
    pub cluster: String,
    /// A primary administrator: the ARN of an IAM role or user (repeat for each)
    #[arg(long = "administrator", value_name = "ARN", required = true)]
    pub administrators: Vec<String>,
    /// The AWS account of the key and the cluster (default: the administrators' account)
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Print the policy of this CA's KMS key instead (--ca-key kms: ca, etcd-ca or front-proxy-ca): only the administrators may call kms:Sign, i.e. issue certificates
    #[arg(long, value_name = "CA")]
    pub ca: Option<String>,
    /// With --ca: the one role that may schedule the CA key's deletion or disable it (default: nobody)
    #[arg(long, value_name = "ARN", requires = "ca")]
    pub break_glass: Option<String>,
}

#[derive(Args, Debug)]
pub struct RenewArgs {
    /// The cluster
    pub cluster: String,
    /// Generate new key pairs too (the service-account key included), and a new first Secrets encryption key
    #[arg(long)]
    pub new_keys: bool,
    /// Run even over changes since the cluster's seal, which are shown first (on a terminal kaws asks instead); review them: they are sealed as approved when the command succeeds
    #[arg(long)]
    pub accept_changes: bool,
}

#[derive(Args, Debug)]
pub struct SealArgs {
    /// The cluster
    pub cluster: String,
    /// Do not ask for confirmation (also --accept-changes)
    #[arg(long, short = 'y', visible_alias = "accept-changes")]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct EntryPointArgs {
    /// The cluster
    pub cluster: String,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The cluster
    pub cluster: String,
    /// Do not contact KMS: skip decrypting the keys and describing the KMS keys
    #[arg(long)]
    pub offline: bool,
    /// Warn about certificates that end within N days (default 30), and exit with status 8 if any does and nothing fails
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..=36500))]
    pub warn_days: Option<i64>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct TerraformArgs {
    /// The cluster
    pub cluster: String,
    /// Run Terraform even over changes since the cluster's seal (shown first; on a terminal kaws asks instead), and even though terraform/modules/kaws (or kaws.json's module source) differs from the module this kaws ships; review them first: Terraform runs them with your AWS credentials, even for plan. apply, destroy and refresh seal what you accepted when Terraform succeeds
    #[arg(long)]
    pub accept_changes: bool,
    /// Arguments passed to Terraform unchanged (after --)
    #[arg(last = true, value_name = "TERRAFORM_ARGS")]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct OutputArgs {
    /// The cluster
    pub cluster: String,
    /// Run Terraform even though the module differs from the one this kaws ships (see `cluster plan --help`)
    #[arg(long)]
    pub accept_changes: bool,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Arguments passed to Terraform unchanged (after --), such as an output's name
    #[arg(last = true, value_name = "TERRAFORM_ARGS")]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The cluster's name: lowercase letters, digits and hyphens
    pub cluster: String,
    /// The DNS domain; the API is served at kubernetes.<DOMAIN>
    #[arg(long)]
    pub domain: String,
    /// The Route 53 hosted zone id of the domain
    #[arg(long, value_name = "ZONE")]
    pub zone_id: String,
    /// The KMS key that encrypts the cluster's private keys (key id, ARN, alias/NAME, alias ARN)
    #[arg(long, value_name = "KEY")]
    pub kms_key: String,
    /// The EC2 key pair installed on every server
    #[arg(long, value_name = "NAME")]
    pub ssh_key: String,
    /// The AMI of every server (default: the latest Flatcar Container Linux stable)
    #[arg(long)]
    pub ami: Option<String>,
    /// The EC2 instance type of masters and nodes
    #[arg(long, value_name = "TYPE", default_value_t = settings::default_instance_type())]
    pub instance_type: String,
    /// The Kubernetes version to run
    #[arg(long, value_name = "VERSION", default_value_t = settings::default_kubernetes_version())]
    pub kubernetes_version: String,
    /// The VPC's network
    #[arg(long, value_name = "CIDR", default_value_t = settings::default_vpc_cidr())]
    pub cidr: String,
    /// The network of Kubernetes services; its first address is the API's
    #[arg(long, value_name = "CIDR", default_value_t = settings::default_service_cidr())]
    pub service_cidr: String,
    /// The network of pods
    #[arg(long, value_name = "CIDR", default_value_t = settings::default_pod_cidr())]
    pub pod_cidr: String,
    /// Who may reach the bastion's SSH port (default: nobody outside the VPC)
    #[arg(long, value_name = "CIDR")]
    pub ssh_cidr: Option<String>,
    /// Where servers live: private (etcd, masters and nodes in private subnets behind NAT; only the bastion and the load balancers public) or public (every server with a public address)
    #[arg(long, value_name = "TOPOLOGY", default_value = "private")]
    pub topology: String,
    /// NAT gateways of a private cluster: per-zone (the default), or single (cheaper, a single point of failure for outbound traffic)
    #[arg(long, value_name = "NAT")]
    pub nat: Option<String>,
    /// The algorithm of the keys kaws generates
    #[arg(long, value_name = "ALG", default_value = "ecdsa-p256",
          value_parser = ["ecdsa-p256", "rsa-2048", "rsa-3072", "rsa-4096"])]
    pub key_algorithm: String,
    /// Keep the Terraform state in this S3 bucket (with S3-native locking) instead of the repository
    #[arg(long, value_name = "BUCKET")]
    pub state_bucket: Option<String>,
    /// Where the CAs' private keys live: kms (an asymmetric KMS key per CA, every certificate signed with kms:Sign; the key never leaves KMS) or sealed (generated by kaws and sealed in the repository, exportable)
    #[arg(long, value_name = "MODE", default_value = "kms", value_parser = ["kms", "sealed"])]
    pub ca_key: String,
    /// With --ca-key kms: use this existing KMS key for a CA instead of creating one (CA is ca, etcd-ca or front-proxy-ca; the key must have key usage SIGN_VERIFY and the key spec of --key-algorithm); repeat for each CA
    #[arg(long, value_name = "CA=KEY")]
    pub ca_kms_key: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ReencryptArgs {
    /// The cluster
    pub cluster: String,
    /// The KMS key to move the cluster's keys to
    #[arg(long, value_name = "KEY")]
    pub new_key: String,
    /// Run even over changes since the cluster's seal, which are shown first (on a terminal kaws asks instead); review them: they are sealed as approved when the command succeeds
    #[arg(long)]
    pub accept_changes: bool,
}

pub fn run(cmd: ClusterCommand, global: &GlobalArgs) -> Result<ExitCode> {
    match cmd {
        ClusterCommand::Init(a) => init(*a, global),
        ClusterCommand::Reencrypt(a) => {
            let cluster = ClusterName::parse(&a.cluster)?;
            let repo = super::current_repo()?;
            let command = format!("cluster reencrypt {cluster}");
            let checked = seal::before(&repo, &cluster, &command, a.accept_changes, true, global)?;
            let files = ops::cluster_reencrypt(&repo, &cluster, &a.new_key, &global.aws())?;
            let mut written: Vec<std::path::PathBuf> = files.iter().map(Into::into).collect();
            written.push(kaws::layout::SETTINGS_FILE.into());
            seal::after(
                &repo,
                &cluster,
                "cluster reencrypt",
                Some(&checked),
                written,
                true,
                global,
            );
            crate::infoln!(
                "Re-encrypted {} keys of cluster {cluster} under {}.",
                files.len(),
                a.new_key
            );
            crate::infoln!("The keys themselves did not change: this is not revocation.");
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Check(a) => check(a, global),
        ClusterCommand::Seal(a) => seal::seal_command(&a.cluster, a.yes, global),
        ClusterCommand::KeyPolicy(a) => {
            let cluster = ClusterName::parse(&a.cluster)?;
            let policy = match &a.ca {
                Some(ca) => kaws::policy::ca_key_policy(
                    &cluster,
                    ca,
                    &a.administrators,
                    a.account.as_deref(),
                    a.break_glass.as_deref(),
                )?,
                None => {
                    kaws::policy::key_policy(&cluster, &a.administrators, a.account.as_deref())?
                }
            };
            crate::outln!("{}", crate::commands::to_json(&policy)?);
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::EntryPoint(a) => {
            let cluster = ClusterName::parse(&a.cluster)?;
            let repo = super::current_repo()?;
            crate::out!("{}", ops::cluster_entry_point(&repo, &cluster)?);
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Renew(a) => {
            let cluster = ClusterName::parse(&a.cluster)?;
            let repo = super::current_repo()?;
            let command = format!("cluster renew {cluster}");
            let checked = seal::before(&repo, &cluster, &command, a.accept_changes, true, global)?;
            let files = ops::cluster_renew(
                &repo,
                ops::ClusterRenew {
                    cluster: cluster.clone(),
                    new_keys: a.new_keys,
                    aws: global.aws(),
                },
            )?;
            crate::infoln!("Renewed cluster {cluster}: {}", files.join(", "));
            let mut written: Vec<std::path::PathBuf> = files.iter().map(Into::into).collect();
            // Writing main.tf.json, renew removes an older kaws' HCL
            // main.tf: its own migration, not a change to approve.
            if files.iter().any(|f| f == kaws::layout::ENTRY_POINT_FILE) {
                written.push(kaws::layout::OLD_ENTRY_POINT_FILE.into());
            }
            seal::after(
                &repo,
                &cluster,
                "cluster renew",
                Some(&checked),
                written,
                true,
                global,
            );
            crate::infoln!("Run `kaws cluster apply {cluster}` so the servers receive them.");
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Plan(a) => terraform(Action::Plan, a, false, global),
        ClusterCommand::Apply(a) => terraform(Action::Apply, a, false, global),
        ClusterCommand::Destroy(a) => terraform(Action::Destroy, a, false, global),
        ClusterCommand::Refresh(a) => terraform(Action::Refresh, a, false, global),
        ClusterCommand::Output(a) => terraform(
            Action::Output,
            TerraformArgs {
                cluster: a.cluster,
                accept_changes: a.accept_changes,
                args: a.args,
            },
            a.output == OutputFormat::Json,
            global,
        ),
    }
}

/// `cluster check --warn-days N`: nothing fails, but a certificate ends
/// within N days (docs/reference/exit-codes.md).
const EXPIRING: u8 = 8;

fn check(a: CheckArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let cluster = ClusterName::parse(&a.cluster)?;
    let repo = super::current_repo()?;
    let mut report = ops::cluster_check(&repo, &cluster, a.offline, &global.aws())?;
    let expiring = report.warn_within(a.warn_days.unwrap_or(ops::WARN_DAYS));
    match a.output {
        OutputFormat::Json => crate::outln!(
            "{}",
            kaws::text::escape_json(&crate::commands::to_json(&report)?)
        ),
        OutputFormat::Text => {
            let mut out = String::new();
            out.push_str(&format!(
                "{:<28} {:<8} {:<12} {:>9}  {:<24} STATE\n",
                "CERTIFICATE", "KIND", "EXPIRES", "RESIDUAL", "CA"
            ));
            for f in &report.findings {
                let residual = f
                    .residual_days
                    .map(|d| format!("{d}d"))
                    .unwrap_or_else(|| "-".into());
                let state = serde_json::to_value(f.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                // Names are file names from the repository and problems
                // quote them: escaped, so no file name drives the terminal.
                out.push_str(&format!(
                    "{:<28} {:<8} {:<12} {:>9}  {:<24} {}\n",
                    kaws::text::escape(&f.name),
                    f.kind,
                    f.expires.as_deref().unwrap_or("-"),
                    residual,
                    f.ca.as_deref().unwrap_or("-"),
                    crate::style::state(
                        &state,
                        f.state.is_failure(),
                        f.state == kaws::ops::State::Warning
                    ),
                ));
                for p in &f.problems {
                    out.push_str(&format!("    {}\n", kaws::text::escape(p)));
                }
            }
            if let Some(s) = &report.seal {
                out.push_str(&seal_summary(s));
            }
            if report.offline {
                out.push_str("Keys were not decrypted (--offline).\n");
                if !report.not_checked.is_empty() {
                    out.push_str("Not checked (--offline):\n");
                    for n in &report.not_checked {
                        out.push_str(&format!("  {}\n", kaws::text::escape(n)));
                    }
                }
            } else {
                if let Some(e) = &report.kms_error {
                    out.push_str(&format!(
                        "Keys were not checked: {}\n",
                        kaws::text::escape(&e.message)
                    ));
                }
                out.push_str(&format!(
                    "\n{:<28} {:<8} {:<17} {:<21} KEY\n",
                    "KMS KEY OF", "KIND", "STATE", "DELETION"
                ));
                // The owner and key come from `<admin>.kms.json` files and
                // problems from KMS: escaped like every finding.
                for k in &report.kms_keys {
                    let state = k.health.state.as_str();
                    out.push_str(&format!(
                        "{:<28} {:<8} {} {:<21} {}\n",
                        kaws::text::escape(&k.owner),
                        k.kind,
                        crate::style::state(
                            &format!("{state:<17}"),
                            k.failed,
                            k.health.state.refuses() && !k.failed
                        ),
                        k.health.deletion_date.as_deref().unwrap_or("-"),
                        kaws::text::escape(k.health.arn.as_deref().unwrap_or(&k.health.key)),
                    ));
                    if let Some(p) = &k.problem {
                        out.push_str(&format!("    {}\n", kaws::text::escape(p)));
                    }
                }
            }
            crate::out!("{out}");
        }
    }
    if report.failed() {
        let n = report.failures();
        return Err(kaws::Error::new(kaws::ErrorKind::CheckFailed, format!("cluster {cluster}: {n} problem(s) found"))
            .with_hint("see the lines above: renew expired certificates, restore damaged files from git, remove any plaintext key, bring the cluster's KMS key back"));
    }
    if let (Some(days), 1..) = (a.warn_days, expiring) {
        // Not an error: the report above is the message. It wins over an
        // unreachable KMS (5), which the report shows too.
        eprintln!(
            "warning: cluster {cluster}: {expiring} certificate(s) end within {days} days{}\nhelp: run `kaws cluster renew {cluster}` and `kaws cluster apply {cluster}`; administrators renew with `kaws admin sign --renew`",
            if report.kms_error.is_some() { ", and the keys could not be checked" } else { "" }
        );
        return Ok(ExitCode::from(EXPIRING));
    }
    if let Some(e) = &report.kms_error {
        // An outage or a refusal is not a PKI problem: exit 5, as every
        // other command does when AWS fails.
        let hint = e
            .hint
            .as_deref()
            .unwrap_or("check your credentials, the region and the network");
        return Err(kaws::Error::aws(format!(
            "cluster {cluster}: the keys could not be checked, and nothing else is wrong: {}",
            e.message
        ))
        .with_hint(format!(
            "{hint}; or run `kaws cluster check {cluster} --offline` to check everything but the keys"
        )));
    }
    Ok(ExitCode::SUCCESS)
}

fn terraform(
    action: Action,
    a: TerraformArgs,
    json: bool,
    global: &GlobalArgs,
) -> Result<ExitCode> {
    let cluster = ClusterName::parse(&a.cluster)?;
    let args = a.args;
    let repo = super::current_repo()?;
    // The seal first: Terraform (even `init` and `output`, which the
    // topology check runs) never starts over changes nobody approved.
    let command = format!("cluster {} {cluster}", action.as_str());
    let seals = matches!(action, Action::Apply | Action::Destroy | Action::Refresh);
    // An older cluster's files are brought up to date first (main.tf.json
    // for an HCL main.tf, pki.auto.tfvars.json): kaws' own migration.
    let migrating = ops::cluster_derived_files_pending(&repo, &cluster);
    let checked = match action {
        // `output` opens no seal; only to seal the migration it makes.
        Action::Output if migrating => ops::seal_check(&repo, &cluster, false, &global.aws()).ok(),
        Action::Output => None,
        _ => Some(seal::before(
            &repo,
            &cluster,
            &command,
            a.accept_changes,
            seals,
            global,
        )?),
    };
    let migrated = if migrating {
        ops::cluster_write_derived_files(&repo, &cluster)?
    } else {
        Vec::new()
    };
    // Sealed at once as written by this command, whatever Terraform then
    // does, so nobody is asked to accept what kaws itself wrote. Over
    // changes accepted for this run only (or no valid seal), nothing is
    // sealed: the migration is listed with them next time.
    if !migrated.is_empty() {
        match checked.as_ref() {
            Some(c) if !c.needs_approval() => seal::after(
                &repo,
                &cluster,
                &format!("cluster {}", action.as_str()),
                Some(c),
                migrated.clone(),
                false,
                global,
            ),
            _ => tracing::info!(
                "cluster {cluster}: the files kaws brought up to date are not sealed by this command"
            ),
        }
    }
    // Ctrl-C goes to Terraform too (same process group); kaws ignores it
    // and waits, so Terraform can release its lock and write its state.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted);
    if matches!(action, Action::Plan | Action::Apply) {
        if let Some(change) =
            ops::cluster_topology_change(&repo, &cluster, &global.aws(), a.accept_changes)?
        {
            topology_notice(&cluster, change);
        }
    }
    let code = ops::cluster_terraform(
        &repo,
        &ClusterTerraform {
            cluster: cluster.clone(),
            action,
            args,
            json,
            accept_changes: a.accept_changes,
            aws: global.aws(),
        },
    )?;
    if code == 0 && seals {
        let what = format!("cluster {}", action.as_str());
        seal::after(
            &repo,
            &cluster,
            &what,
            checked.as_ref(),
            migrated,
            false,
            global,
        );
    }
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Said before Terraform's own plan, on stderr, so it cannot be missed
/// among a hundred resource changes nor break a plan piped elsewhere.
fn topology_notice(cluster: &ClusterName, change: ops::TopologyChange) {
    let what = match change.to {
        Topology::Private => "private subnets are created with NAT gateways, VPC endpoints and an ingress load balancer; the etcd servers are replaced in them, without a public address; running masters and nodes stay in the public subnets until you replace them (an instance refresh of each Auto Scaling group)",
        Topology::Public => "the etcd servers are replaced in the public subnets, with public addresses; running masters and nodes must be replaced (an instance refresh) before the private subnets, NAT gateways, VPC endpoints and the ingress load balancer can go",
    };
    eprintln!(
        "warning: cluster {cluster}: the topology changes from {} to {}.\n  {what}.\n  etcd keeps its data volumes, but all three members restart at once: the API is down until they are back.\n  Read docs/guides/change-topology.md before applying.",
        change.from, change.to
    );
}

fn init(a: InitArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let key_algorithm: KeyAlgorithm = a.key_algorithm.parse()?;
    let topology: Topology = a.topology.parse()?;
    let nat: Nat = match &a.nat {
        Some(n) => n.parse()?,
        None => Nat::default(),
    };
    if a.nat.is_some() && topology == Topology::Public {
        return Err(kaws::Error::input(
            "--nat applies only to the private topology: a public cluster has no NAT gateway",
        )
        .with_hint("leave out --nat, or use --topology private"));
    }
    let name = a.cluster.clone();
    let settings = ClusterSettings {
        cluster: a.cluster,
        domain: a.domain,
        zone_id: a.zone_id,
        region: global.region.clone().unwrap_or_default(),
        kms_key_id: a.kms_key,
        ssh_key_name: a.ssh_key,
        ssh_cidr: a.ssh_cidr.unwrap_or_default(),
        ami: a.ami.unwrap_or_default(),
        instance_type: a.instance_type,
        kubernetes_version: a.kubernetes_version,
        vpc_cidr: a.cidr,
        service_cidr: a.service_cidr,
        pod_cidr: a.pod_cidr,
        key_algorithm,
        state_bucket: a.state_bucket.unwrap_or_default(),
        topology,
        nat,
        ca_key: Default::default(),
        ca_kms_keys: Default::default(),
    };
    let ca_key: CaKey = a.ca_key.parse()?;
    let ca_kms_keys = kaws::signer::parse_ca_kms_keys(&a.ca_kms_key, ca_key)?;
    // Validate everything that needs no AWS before contacting AWS.
    let mut check = settings.clone();
    if check.region.is_empty() {
        check.region = "us-east-1".into();
    }
    check.validate()?;
    let repo = super::current_repo()?;
    let report = ops::cluster_init(
        &repo,
        ClusterInit {
            settings,
            aws: global.aws(),
            ca_key,
            ca_kms_keys,
        },
    )?;
    let cluster = ClusterName::parse(&name)?;
    crate::infoln!(
        "Created the cluster's settings and PKI ({} files) in {}",
        report.files.len(),
        report.path.display()
    );
    for f in &report.files {
        crate::infoln!("  {f}");
    }
    if report.module_source != kaws::terraform::DEFAULT_SOURCE {
        // Not the module in this repository: say so, every time.
        eprintln!(
            "note: main.tf.json uses the Terraform module at \"{}\" (from kaws.json), not this repository's terraform/modules/kaws; kaws cannot check it",
            kaws::text::escape(&report.module_source)
        );
    }
    seal::after(&repo, &cluster, "cluster init", None, vec![], true, global);
    Ok(ExitCode::SUCCESS)
}

/// One line on the seal, under `cluster check`'s table.
fn seal_summary(s: &ops::SealReport) -> String {
    use kaws::text::escape;
    let by = |b: &ops::SealedBy| {
        format!(
            "generation {}, sealed {} by {} (kaws {}), KMS key {}",
            b.generation,
            b.sealed_at,
            escape(&b.sealed_by),
            escape(&b.command),
            escape(&b.kms_key)
        )
    };
    let line = match (&s.state, &s.sealed) {
        (ops::SealState::Valid, Some(b)) => format!("valid, {}", by(b)),
        (ops::SealState::Missing, _) => "none".to_string(),
        (ops::SealState::Invalid(why), _) => format!("NOT valid: {}", escape(why)),
        (ops::SealState::Unverified(why), Some(b)) => {
            format!("not verified ({}); it claims {}", escape(why), by(b))
        }
        (_, _) => "-".to_string(),
    };
    let n = s.comparison.differences.len();
    let changes = if matches!(
        s.state,
        ops::SealState::Valid | ops::SealState::Unverified(_)
    ) {
        format!(
            "; {n} change(s) not approved, {} new administrator request(s)",
            s.comparison.requests.len()
        )
    } else {
        String::new()
    };
    format!("\nSeal: {line}{changes}.\n")
}
