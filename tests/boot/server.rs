//! A server's boot, as far as it can run here: the user data exactly as EC2
//! serves it goes to `ignition-validate` and to the Ignition binary itself
//! (`fetch-offline`, then `files` into a directory standing in for the
//! server's root). Everything the tests read of a server afterwards is what
//! Ignition wrote there, never a decoding of the test's own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// EC2 refuses raw user data over 16 KiB; kaws keeps this much headroom.
pub const USER_DATA_LIMIT: usize = 14 * 1024;

/// The Ignition binary of Debian's `ignition` package (in its initramfs module).
pub fn ignition_bin() -> PathBuf {
    let p = std::env::var_os("KAWS_TEST_IGNITION")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/dracut/modules.d/30ignition/ignition"));
    assert!(
        p.is_file(),
        "{}: the Ignition binary is missing; install Debian's `ignition` package (scripts/setup-tools.sh does)",
        p.display()
    );
    p
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run one Ignition stage on `user_data` with the `file` platform.
pub fn ignition_stage(dir: &Path, user_data: &Path, stage: &str) -> std::process::Output {
    let stand_ins = dir.join("stand-ins");
    std::fs::create_dir_all(&stand_ins).unwrap();
    // The files stage relabels for SELinux with setfiles, which only the OS
    // image has; relabelling is not what is judged here.
    let setfiles = stand_ins.join("setfiles");
    if !setfiles.exists() {
        std::fs::write(&setfiles, "#!/bin/sh\nexit 0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&setfiles, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        stand_ins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(ignition_bin())
        .env("IGNITION_CONFIG_FILE", user_data)
        .env("PATH", path)
        .args(["-platform", "file", "-stage", stage, "-log-to-stdout"])
        .arg("-root")
        .arg(dir.join("root"))
        .arg("-config-cache")
        .arg(dir.join("config.json"))
        .arg("-state-file")
        .arg(dir.join("state"))
        .arg("-neednet")
        .arg(dir.join("neednet"))
        .output()
        .expect("run ignition")
}

/// What Ignition wrote for one server.
pub struct Server {
    pub name: String,
    pub raw: Vec<u8>,
    pub root: PathBuf,
    /// Unit files and drop-ins under /etc/systemd/system, by name.
    pub units: BTreeMap<String, String>,
    pub masked: BTreeSet<String>,
    pub enabled: BTreeSet<String>,
    /// Every other regular file Ignition wrote, by absolute path.
    pub files: BTreeMap<String, String>,
    /// Modes of `files`.
    pub modes: BTreeMap<String, u32>,
}

impl Server {
    /// Boot `raw` (user data as EC2 serves it) as far as Ignition goes.
    pub fn boot(dir: &Path, name: &str, raw: Vec<u8>) -> Server {
        let dir = dir.join(name);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc/selinux")).unwrap();
        // The files stage reads the SELinux policy type of the root.
        std::fs::write(
            root.join("etc/selinux/config"),
            "SELINUX=disabled\nSELINUXTYPE=targeted\n",
        )
        .unwrap();
        let user_data = dir.join("user-data");
        std::fs::write(&user_data, &raw).unwrap();

        assert!(
            raw.len() <= USER_DATA_LIMIT,
            "{name}: raw user data is {} bytes, over {USER_DATA_LIMIT}",
            raw.len()
        );
        let out = Command::new("ignition-validate")
            .arg(&user_data)
            .output()
            .expect("ignition-validate (Debian package ignition) is installed");
        assert!(
            out.status.success(),
            "{name}: ignition-validate refuses the user data:\n{}",
            output_text(&out)
        );
        for stage in ["fetch-offline", "files"] {
            let out = ignition_stage(&dir, &user_data, stage);
            let text = output_text(&out);
            assert!(
                out.status.success() && text.contains("Ignition finished successfully"),
                "{name}: Ignition's {stage} stage failed:\n{text}"
            );
        }

        let mut server = Server {
            name: name.to_string(),
            raw,
            root: root.clone(),
            units: BTreeMap::new(),
            masked: BTreeSet::new(),
            enabled: BTreeSet::new(),
            files: BTreeMap::new(),
            modes: BTreeMap::new(),
        };
        server.read_tree(&root);
        if let Some(preset) = server
            .files
            .remove("/etc/systemd/system-preset/20-ignition.preset")
        {
            for line in preset.lines() {
                if let Some(unit) = line.strip_prefix("enable ") {
                    server.enabled.insert(unit.trim().to_string());
                }
            }
        }
        for stub in ["/etc/.ignition-result.json", "/etc/selinux/config"] {
            server.files.remove(stub);
        }
        server
    }

    fn read_tree(&mut self, dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let abs = format!("/{}", path.strip_prefix(&self.root).unwrap().display());
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                self.read_tree(&path);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                let unit = abs.strip_prefix("/etc/systemd/system/");
                match unit {
                    Some(u) if target == Path::new("/dev/null") => {
                        self.masked.insert(u.to_string());
                    }
                    _ => panic!(
                        "{}: unexpected link {abs} -> {}",
                        self.name,
                        target.display()
                    ),
                }
            } else {
                let body = std::fs::read_to_string(&path).unwrap();
                if let Some(unit) = abs.strip_prefix("/etc/systemd/system/") {
                    self.units.insert(unit.to_string(), body);
                } else {
                    self.modes
                        .insert(abs.clone(), meta.permissions().mode() & 0o7777);
                    self.files.insert(abs, body);
                }
            }
        }
    }

    pub fn unit(&self, name: &str) -> &str {
        self.units
            .get(name)
            .unwrap_or_else(|| panic!("{}: no {name} in {:?}", self.name, self.units.keys()))
    }

    pub fn file(&self, path: &str) -> &str {
        self.files
            .get(path)
            .unwrap_or_else(|| panic!("{}: no {path} in {:?}", self.name, self.files.keys()))
    }

    /// A space-separated list from /etc/kaws/kaws.env.
    pub fn env_list(&self, var: &str) -> BTreeSet<String> {
        let env = self.file("/etc/kaws/kaws.env");
        let line = env
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{var}=")))
            .unwrap_or_else(|| panic!("{var} in {env}"));
        line.trim_matches('"')
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// Every /etc/kaws/… and /run/kaws/… path named by a unit or a config
    /// file the components read.
    pub fn named_paths(&self) -> BTreeSet<String> {
        let mut texts: Vec<&str> = self.units.values().map(String::as_str).collect();
        for (path, body) in &self.files {
            if path.ends_with(".kubeconfig") || path.ends_with(".yaml") {
                texts.push(body);
            }
        }
        let mut out = BTreeSet::new();
        for t in texts {
            for prefix in ["/etc/kaws/", "/run/kaws/"] {
                for (i, _) in t.match_indices(prefix) {
                    let rest = &t[i..];
                    let end = rest
                        .find(|c: char| c.is_whitespace() || ":'\",=\\".contains(c))
                        .unwrap_or(rest.len());
                    out.insert(rest[..end].to_string());
                }
            }
        }
        out
    }

    /// The scripts this server runs: every file Ignition wrote with a shebang.
    pub fn scripts(&self) -> Vec<(&String, &String)> {
        self.files
            .iter()
            .filter(|(_, body)| body.starts_with("#!"))
            .collect()
    }
}
