//! The seal around privileged commands: open it and show what changed
//! before (refuse unless approved), seal again after.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use kaws::layout::{ClusterName, Repo};
use kaws::ops::{self, SealCheck, SealWrite};
use kaws::Result;

use crate::cli::GlobalArgs;

/// Open the seal before `command` runs. Anything that needs approval is
/// shown on stderr; then accepted with `--accept-changes`, asked on a
/// terminal, or refused (exit 3) with nothing run. `seals` says whether
/// the command writes the seal when it succeeds.
pub fn before(
    repo: &Repo,
    cluster: &ClusterName,
    command: &str,
    accept_changes: bool,
    seals: bool,
    global: &GlobalArgs,
) -> Result<SealCheck> {
    let check = ops::seal_check(repo, cluster, false, &global.aws())?;
    if !check.needs_approval() {
        for line in check.lines() {
            tracing::info!("{line}");
        }
        return Ok(check);
    }
    for line in check.lines() {
        eprintln!("{line}");
    }
    if check.unsealable() > 0 {
        return Err(check.refusal(command));
    }
    let after = if seals {
        format!(" and sealed once `kaws {command}` succeeds")
    } else {
        format!(" for this run only (`kaws {command}` does not write the seal)")
    };
    if accept_changes {
        eprintln!("Accepted with --accept-changes{after}.");
        return Ok(check);
    }
    if std::io::stdin().is_terminal() {
        if ask(&format!(
            "Accept these changes and run `kaws {command}`? [y/N] "
        )) {
            eprintln!("Accepted{after}.");
            return Ok(check);
        }
        return Err(kaws::Error::input(format!(
            "changes not accepted; `kaws {command}` did not run"
        ))
        .with_hint("restore what you do not approve from git and find out who changed it"));
    }
    Err(check.refusal(command))
}

fn ask(question: &str) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// Seal the cluster after `command` succeeded. `written` are the files it
/// wrote (absolute, or relative to the cluster directory). A seal that
/// cannot be written is a warning: the command itself succeeded, and the
/// next privileged command shows the unsealed changes again.
pub fn after(
    repo: &Repo,
    cluster: &ClusterName,
    command: &str,
    checked: Option<&SealCheck>,
    written: Vec<PathBuf>,
    ca_checked: bool,
    global: &GlobalArgs,
) {
    let result = ops::seal_write(
        repo,
        cluster,
        SealWrite {
            command,
            checked,
            written,
            ca_checked,
            aws: global.aws(),
        },
    );
    match result {
        Ok(Some(w)) => crate::infoln!(
            "Sealed cluster {cluster} (generation {}, {} files): commit {} with the rest.",
            w.generation,
            w.files,
            w.path
                .strip_prefix(repo.root())
                .unwrap_or(&w.path)
                .display()
        ),
        Ok(None) => tracing::info!("the seal of cluster {cluster} already covers this state"),
        Err(e) => {
            eprintln!(
                "warning: `kaws {command}` succeeded, but cluster {cluster} was not sealed: {}",
                kaws::text::escape(e.message())
            );
            if let Some(h) = e.hint() {
                eprintln!("  help: {}", kaws::text::escape(h));
            }
        }
    }
}

/// `kaws cluster seal`: show what is being sealed and what differs from
/// the previous seal, confirm, seal.
pub fn seal_command(
    cluster: &str,
    yes: bool,
    global: &GlobalArgs,
) -> Result<std::process::ExitCode> {
    let cluster = ClusterName::parse(cluster)?;
    let repo = super::current_repo()?;
    let check = ops::seal_check(&repo, &cluster, false, &global.aws())?;
    for line in check.lines() {
        eprintln!("{line}");
    }
    if !check.needs_approval() {
        crate::infoln!("Cluster {cluster} is sealed and nothing changed since: nothing to seal.");
        return Ok(std::process::ExitCode::SUCCESS);
    }
    if check.unsealable() > 0 {
        return Err(check.refusal(&format!("cluster seal {cluster}")));
    }
    let prefix = format!("clusters/{cluster}/");
    let files = check.report.files;
    eprintln!(
        "Sealing {files} files: {prefix}*, terraform/ and kaws.json, under the cluster's KMS key."
    );
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(kaws::Error::input(format!(
                "cluster {cluster}: not sealed: approval needed, and standard input is not a terminal"
            ))
            .with_hint("review what is listed above, then run again with --yes"));
        }
        if !ask("Seal the cluster as it is now? [y/N] ") {
            return Err(kaws::Error::input(format!(
                "cluster {cluster}: not sealed; nothing was written"
            )));
        }
    }
    let command = format!("cluster seal {cluster}");
    let w = ops::seal_write(
        &repo,
        &cluster,
        SealWrite {
            command: "cluster seal",
            checked: Some(&check),
            written: vec![],
            ca_checked: false,
            aws: global.aws(),
        },
    )
    .map_err(|e| e.or_hint(format!("run `kaws {command}` again")))?;
    if let Some(w) = w {
        crate::infoln!(
            "Sealed cluster {cluster} (generation {}, {} files, {} bytes): commit {} with the rest.",
            w.generation,
            w.files,
            w.bytes,
            w.path.strip_prefix(repo.root()).unwrap_or(&w.path).display()
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
