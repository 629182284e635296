use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kaws::layout::Repo;
use kaws::layout::{AdminName, ClusterName};
use kaws::ops::{
    self, AdminCreate, AdminCredential, AdminInstall, AdminSign, InstallMode, SignPrompt,
};
use kaws::Result;

use crate::cli::{GlobalArgs, OutputFormat};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Make your key (sealed by your KMS key) and a certificate signing request
    Create(CreateArgs),
    /// Verify an administrator's CSR and sign it with the cluster CA (primary administrators)
    Sign(SignArgs),
    /// Install your signed credentials into your kubeconfig
    Install(InstallArgs),
    /// Print your credential for kubectl (an exec credential plugin; `admin install` sets it up)
    Credential(CredentialArgs),
    /// List a cluster's administrators with their state and expiry
    List(ListArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The cluster
    pub cluster: String,
    /// Your administrator name (the certificate's CN)
    pub name: String,
    /// Your own KMS key, which encrypts your private key
    #[arg(long, value_name = "KEY")]
    pub kms_key: String,
    /// A Kubernetes group (the certificate's O); repeat for several. system:masters makes a cluster-admin
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The key's algorithm (default: the cluster's)
    #[arg(long, value_name = "ALG", value_parser = ["ecdsa-p256", "rsa-2048", "rsa-3072", "rsa-4096"])]
    pub key_algorithm: Option<String>,
}

#[derive(Args, Debug)]
#[command(
    long_about = "Verify an administrator's CSR and sign it with the cluster CA.\n\n\
Needs only the CSR. The CA key is decrypted with KMS in memory, never on disk. The CSR's \
signature, key strength and CN (which must be NAME) are checked, and its subject, groups and \
key fingerprint are shown. Pass the fingerprint the administrator gave you out of band with \
--fingerprint: a different one is refused.\n\n\
The certificate carries only what kaws decides: the CSR's CN and O, CA:FALSE, \
digitalSignature (and keyEncipherment for RSA), clientAuth only, a random serial, and a \
validity of --days, never past the CA's. Every extension the CSR asks for is ignored."
)]
pub struct SignArgs {
    /// The cluster
    pub cluster: String,
    /// The administrator to sign
    pub name: String,
    /// Validity of the certificate, in days
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// The SHA-256 fingerprint of the administrator's public key, received out of band
    #[arg(long, value_name = "SHA256")]
    pub fingerprint: Option<String>,
    /// Replace an existing certificate
    #[arg(long)]
    pub renew: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Sign even over changes since the cluster's seal, which are shown first (on a terminal kaws asks instead); review them: they are sealed as approved once the certificate is written
    #[arg(long)]
    pub accept_changes: bool,
}

#[derive(Args, Debug)]
#[command(
    long_about = "Install your signed credentials into your kubeconfig.\n\n\
Merges a cluster, a user <NAME>-<CLUSTER> and a context <CLUSTER> into the kubeconfig; every \
other cluster, user and context is kept, and the current context is set only if there is none. \
Your key is decrypted once to check that it matches your certificate.\n\n\
By default the user is a kubectl exec entry: kubectl runs `kaws admin credential` (this binary \
and this repository, by absolute path) on each call, which decrypts your key with KMS in memory \
and hands it to kubectl; no key is written to any file. With --embed the decrypted key itself \
is written into the kubeconfig (mode 0600), for a self-contained file. Running install again \
switches between the two cleanly. --profile and --region, if given, are recorded in the entry."
)]
pub struct InstallArgs {
    /// The cluster
    pub cluster: String,
    /// Your administrator name
    pub name: String,
    /// Write the decrypted key into the kubeconfig instead of an exec entry
    #[arg(long)]
    pub embed: bool,
    /// The kubeconfig to merge into (default: the first path of KUBECONFIG, else ~/.kube/config)
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The API server URL (default: https://kubernetes.<domain>)
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

#[derive(Args, Debug)]
#[command(
    long_about = "Print your credential for kubectl: a kubectl exec credential plugin.\n\n\
Reads your certificate and sealed key from the repository, decrypts the key with KMS in \
memory, and prints an ExecCredential (client.authentication.k8s.io/v1, or the version \
KUBERNETES_EXEC_INFO asks for) with the certificate, the key and the certificate's expiry on \
stdout. It writes no file. Errors are one line on stderr, which kubectl shows. \
`kaws admin install` writes the kubeconfig entry that runs it."
)]
pub struct CredentialArgs {
    /// The cluster
    pub cluster: String,
    /// Your administrator name
    pub name: String,
    /// The kaws repository (default: the one containing the current directory)
    #[arg(long, value_name = "DIR")]
    pub repository: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The cluster
    pub cluster: String,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub fn run(cmd: AdminCommand, global: &GlobalArgs) -> Result<ExitCode> {
    if let AdminCommand::Credential(a) = cmd {
        return credential(a, global);
    }
    let repo = super::current_repo()?;
    match cmd {
        AdminCommand::Credential(_) => unreachable!("handled above"),
        AdminCommand::Create(a) => {
            let cluster = ClusterName::parse(&a.cluster)?;
            let name = AdminName::parse(&a.name)?;
            let key_algorithm = a.key_algorithm.as_deref().map(str::parse).transpose()?;
            let made = ops::admin_create(
                &repo,
                AdminCreate {
                    cluster,
                    name: name.clone(),
                    kms_key: a.kms_key,
                    groups: a.groups,
                    key_algorithm,
                    aws: global.aws(),
                },
            )?;
            crate::infoln!("Wrote {}", made.csr.display());
            crate::infoln!("Wrote {}", made.key.display());
            crate::infoln!("Wrote {}", made.record.display());
            crate::infoln!("Public key fingerprint (SHA-256): {}", made.fingerprint);
            crate::infoln!("Commit these files, and give this fingerprint to a primary administrator through another channel.");
        }
        AdminCommand::Sign(a) => {
            let cluster = ClusterName::parse(&a.cluster)?;
            let name = AdminName::parse(&a.name)?;
            let command = format!("admin sign {cluster} {name}");
            let checked = crate::commands::seal::before(
                &repo,
                &cluster,
                &command,
                a.accept_changes,
                true,
                global,
            )?;
            // A CA operation never proceeds silently: without a terminal to
            // ask on, only --yes signs.
            let interactive = !a.yes && std::io::stdin().is_terminal();
            let mut unattended = false;
            let mut confirm = |p: &SignPrompt| -> bool {
                use kaws::text::escape;
                eprintln!("Cluster:     {}", p.cluster);
                eprintln!("Subject:     CN={}", escape(&p.name));
                // One group per line, at most a handful (kaws caps them),
                // and the privileged ones apart, where they cannot scroll
                // away or hide in a long line.
                if p.groups.is_empty() {
                    eprintln!("Groups:      (none)");
                }
                for (i, g) in p.groups.iter().enumerate() {
                    let label = if i == 0 { "Groups:" } else { "" };
                    eprintln!("{label:<12} {}", escape(g));
                }
                let (on, off) = if crate::style::stderr_enabled() {
                    ("\x1b[1;31m", "\x1b[0m")
                } else {
                    ("", "")
                };
                for g in &p.privileged {
                    let why = if g == "system:masters" {
                        "cluster-admin: bypasses every authorization check"
                    } else {
                        "a group of the cluster's own components"
                    };
                    eprintln!("{on}PRIVILEGED:{off}  {on}{}{off}  ({why})", escape(g));
                }
                if let Some(previous) = &p.previous_groups {
                    let now: Vec<&String> = p.groups.iter().chain(&p.privileged).collect();
                    let added: Vec<&&String> =
                        now.iter().filter(|g| !previous.contains(g)).collect();
                    let removed: Vec<&String> =
                        previous.iter().filter(|g| !now.contains(g)).collect();
                    if added.is_empty() && removed.is_empty() {
                        eprintln!("Changes:     none: the current certificate has the same groups");
                    }
                    for g in added {
                        eprintln!("{on}Added:{off}       {}", escape(g));
                    }
                    for g in removed {
                        eprintln!("Removed:     {}", escape(g));
                    }
                }
                eprintln!("Key:         {}", p.key);
                eprintln!("Fingerprint: {}", p.fingerprint);
                eprintln!(
                    "Validity:    {} days{}",
                    p.days,
                    if p.renew { " (renewal)" } else { "" }
                );
                if a.yes {
                    return true;
                }
                if !interactive {
                    unattended = true;
                    return false;
                }
                eprint!("Sign this certificate? [y/N] ");
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
            };
            let signed = ops::admin_sign(
                &repo,
                AdminSign {
                    cluster: cluster.clone(),
                    name,
                    days: a.days,
                    fingerprint: a.fingerprint,
                    renew: a.renew,
                    aws: global.aws(),
                    confirm: &mut confirm,
                },
            );
            let path = match signed {
                Err(_) if unattended => {
                    return Err(kaws::error::Error::input(
                        "not signed: standard input is not a terminal, so kaws cannot ask for confirmation; nothing was written",
                    )
                    .with_hint("review the request above, then sign in a terminal, or pass --yes to sign without asking"));
                }
                other => other?,
            };
            crate::infoln!("Wrote {}", path.display());
            crate::commands::seal::after(
                &repo,
                &cluster,
                "admin sign",
                Some(&checked),
                vec![path.clone()],
                true,
                global,
            );
            crate::infoln!(
                "Commit it; the administrator then runs `kaws admin install {} {}`.",
                a.cluster,
                a.name
            );
        }
        AdminCommand::Install(a) => {
            let cluster = ClusterName::parse(&a.cluster)?;
            let name = AdminName::parse(&a.name)?;
            let mode = if a.embed {
                InstallMode::Embed
            } else {
                InstallMode::Exec {
                    kaws: this_binary()?,
                }
            };
            let installed = ops::admin_install(
                &repo,
                AdminInstall {
                    cluster,
                    name: name.clone(),
                    kubeconfig: a.kubeconfig,
                    server: a.server,
                    aws: global.aws(),
                    mode,
                },
            )?;
            // What changed in entries that were there is always shown, -q or not.
            for n in &installed.notes {
                eprintln!("note: {}: {n}", installed.path.display());
            }
            crate::infoln!(
                "Merged cluster {c}, user {name}-{c} and context {c} into {}",
                installed.path.display(),
                c = a.cluster
            );
            if a.embed {
                crate::infoln!("Your decrypted key is in that file (mode 0600): keep it to yourself, or run install again without --embed.");
            } else {
                crate::infoln!(
                    "No key was written: kubectl runs `kaws admin credential` for each call."
                );
            }
            crate::infoln!("Use it with `kubectl --context {} ...`", a.cluster);
        }
        AdminCommand::List(a) => {
            let cluster = ClusterName::parse(&a.cluster)?;
            let list = ops::admin_list(&repo, &cluster)?;
            match a.output {
                OutputFormat::Json => {
                    let json = crate::commands::to_json(&list)?;
                    crate::outln!("{}", kaws::text::escape_json(&json));
                }
                OutputFormat::Text => {
                    crate::outln!(
                        "{:<20} {:<10} {:<12} {:<24} FINGERPRINT",
                        "NAME",
                        "STATE",
                        "EXPIRES",
                        "GROUPS"
                    );
                    for s in &list {
                        let state = serde_json::to_value(s.state)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default();
                        // Groups come from committed certificates and CSRs:
                        // every value is escaped before it reaches the terminal.
                        crate::outln!(
                            "{:<20} {:<10} {:<12} {:<24} {}",
                            kaws::text::escape(&s.name),
                            state,
                            s.expires.as_deref().unwrap_or("-"),
                            if s.groups.is_empty() {
                                "-".to_string()
                            } else {
                                s.groups
                                    .iter()
                                    .map(|g| kaws::text::escape(g).into_owned())
                                    .collect::<Vec<_>>()
                                    .join(",")
                            },
                            s.fingerprint.as_deref().unwrap_or("-"),
                        );
                        if let Some(p) = &s.problem {
                            crate::outln!("  problem: {}", kaws::text::escape(p));
                        }
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The kaws binary for kubectl to run, by absolute path. The path it was
/// started by is kept when it names this binary, so that a link a package
/// manager updates (/usr/local/bin/kaws) survives upgrades; otherwise the
/// resolved path of the running executable.
fn this_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| {
        kaws::Error::io("find the path of", &PathBuf::from("kaws"), e)
            .with_hint("pass --embed, or run kaws by its full path")
    })?;
    let same =
        |p: &std::path::Path| std::fs::canonicalize(p).ok() == std::fs::canonicalize(&exe).ok();
    let invoked = std::env::args_os().next().map(PathBuf::from);
    let candidate = match invoked {
        Some(p) if p.components().count() > 1 => std::path::absolute(&p).ok(),
        Some(p) => std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .filter(|d| d.is_absolute())
                .map(|d| d.join(&p))
                .find(|c| c.is_file())
        }),
        None => None,
    };
    Ok(candidate.filter(|c| same(c)).unwrap_or(exe))
}

/// `kaws admin credential`: the credential goes to stdout in one piece,
/// written straight to the file descriptor, so that no buffer of the
/// standard library keeps a copy of the key.
fn credential(a: CredentialArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let cluster = ClusterName::parse(&a.cluster)?;
    let name = AdminName::parse(&a.name)?;
    let repo = match &a.repository {
        Some(dir) => Repo::at(dir)?,
        None => super::current_repo()?,
    };
    let credential = ops::admin_credential(
        &repo,
        AdminCredential {
            cluster,
            name,
            aws: global.aws(),
            exec_info: std::env::var(kaws::exec_credential::EXEC_INFO_VAR).ok(),
        },
    )?;
    let stdout = std::io::stdout();
    let _lock = stdout.lock();
    let mut rest = credential.expose();
    while !rest.is_empty() {
        match rustix::io::write(&stdout, rest) {
            Ok(n) => rest = &rest[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(kaws::Error::io(
                    "write the credential to",
                    &PathBuf::from("stdout"),
                    e.into(),
                ))
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
