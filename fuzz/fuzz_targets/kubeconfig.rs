//! Merging into an existing kubeconfig, whatever the user's file holds,
//! with either kind of user entry, and switching from one to the other.
#![no_main]
use kaws::kubeconfig::{merged, Credentials, Entry, ExecPlugin};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let embed = Entry {
        cluster: "prod",
        server: "https://kubernetes.example.com",
        ca_pem: b"CA",
        user: "alice-prod",
        credentials: Credentials::Embedded {
            cert_pem: b"CERT",
            key_pem: b"KEY",
        },
    };
    let plugin = ExecPlugin {
        command: "/usr/local/bin/kaws".into(),
        args: vec!["admin".into(), "credential".into(), "prod".into(), "alice".into()],
        env: vec![],
        install_hint: "install kaws".into(),
    };
    let exec = Entry {
        credentials: Credentials::Exec(&plugin),
        ..embed
    };
    let config = Path::new("config");
    if let Ok(once) = merged(Some(data), &embed, config) {
        // A merged file can be merged again, to the same text.
        let twice = merged(Some(once.as_bytes()), &embed, config)
            .expect("a merged kubeconfig merges again");
        assert_eq!(once.as_str(), twice.as_str());
        // Switching to the exec entry leaves no key behind, and is the
        // same as installing the exec entry in the first place: the same
        // entries and fields (a field the merge replaces keeps its place,
        // so the order of a user's fields may differ).
        let switched = merged(Some(once.as_bytes()), &exec, config).expect("switches");
        let direct = merged(Some(data), &exec, config).expect("merges");
        let parse = |t: &str| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(t).expect("parses");
        assert_eq!(parse(&switched), parse(&direct));
    }
});
