//! Merging into an existing kubeconfig, whatever the user's file holds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let e = kaws::kubeconfig::Entry {
        cluster: "prod",
        server: "https://kubernetes.example.com",
        ca_pem: b"CA",
        user: "alice-prod",
        cert_pem: b"CERT",
        key_pem: b"KEY",
    };
    if let Ok(once) = kaws::kubeconfig::merged(Some(data), &e, Path::new("config")) {
        // A merged file can be merged again, to the same text.
        let twice = kaws::kubeconfig::merged(Some(once.as_bytes()), &e, Path::new("config"))
            .expect("a merged kubeconfig merges again");
        assert_eq!(once.as_str(), twice.as_str());
    }
});
