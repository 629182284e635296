use std::process::ExitCode;

use clap::{Args, Subcommand};
use kaws::layout::ClusterName;
use kaws::ops::{self, ClusterInit, ClusterTerraform};
use kaws::settings::{self, ClusterSettings, KeyAlgorithm, Nat, Topology};
use kaws::terraform::Action;
use kaws::Result;

use crate::cli::{GlobalArgs, OutputFormat};

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
administrator's state is shown. Certificates that end within 30 days are warnings.\n\n\
Unless --offline, the KMS keys are described too: the cluster's key and each \
administrator's (recorded in <admin>.kms.json), as enabled, disabled, pending-deletion (with \
the deletion date), not-found or unknown. A cluster key that is not enabled is a failure; an \
administrator's is a warning for them.\n\n\
Exits with status 6 when anything is invalid, expired or exposed, or the cluster's KMS key \
cannot be used.")]
    Check(CheckArgs),
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
}

#[derive(Args, Debug)]
pub struct RenewArgs {
    /// The cluster
    pub cluster: String,
    /// Generate new key pairs too (the service-account key included), and a new first Secrets encryption key
    #[arg(long)]
    pub new_keys: bool,
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
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct TerraformArgs {
    /// The cluster
    pub cluster: String,
    /// Run Terraform even though terraform/modules/kaws (or kaws.json's module source) differs from the module this kaws ships; review the change first: Terraform runs it with your AWS credentials, even for plan
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
}

#[derive(Args, Debug)]
pub struct ReencryptArgs {
    /// The cluster
    pub cluster: String,
    /// The KMS key to move the cluster's keys to
    #[arg(long, value_name = "KEY")]
    pub new_key: String,
}

pub fn run(cmd: ClusterCommand, global: &GlobalArgs) -> Result<ExitCode> {
    match cmd {
        ClusterCommand::Init(a) => init(*a, global),
        ClusterCommand::Reencrypt(a) => {
            let cluster = ClusterName::parse(&a.cluster)?;
            let repo = super::current_repo()?;
            let files = ops::cluster_reencrypt(&repo, &cluster, &a.new_key, &global.aws())?;
            crate::infoln!(
                "Re-encrypted {} keys of cluster {cluster} under {}.",
                files.len(),
                a.new_key
            );
            crate::infoln!("The keys themselves did not change: this is not revocation.");
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Check(a) => check(a, global),
        ClusterCommand::KeyPolicy(a) => {
            let cluster = ClusterName::parse(&a.cluster)?;
            let policy =
                kaws::policy::key_policy(&cluster, &a.administrators, a.account.as_deref())?;
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
            let files = ops::cluster_renew(
                &repo,
                ops::ClusterRenew {
                    cluster: cluster.clone(),
                    new_keys: a.new_keys,
                    aws: global.aws(),
                },
            )?;
            crate::infoln!("Renewed cluster {cluster}: {}", files.join(", "));
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

fn check(a: CheckArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let cluster = ClusterName::parse(&a.cluster)?;
    let repo = super::current_repo()?;
    let report = ops::cluster_check(&repo, &cluster, a.offline, &global.aws())?;
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
            if report.offline {
                out.push_str("Keys were not decrypted (--offline).\n");
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
            cluster,
            action,
            args,
            json,
            accept_changes: a.accept_changes,
            aws: global.aws(),
        },
    )?;
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
    };
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
        },
    )?;
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
    Ok(ExitCode::SUCCESS)
}
