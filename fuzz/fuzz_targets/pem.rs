//! PEM decoding of every file kaws reads (certificates, CSRs, public keys).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    for tag in ["CERTIFICATE", "CERTIFICATE REQUEST", "PUBLIC KEY"] {
        let _ = kaws::x509::decode_pem(data, tag, Path::new("fuzz.pem"));
    }
    let _ = kaws::ops::looks_like_private_key(data);
});
