//! CSR parsing and verification: `kaws admin sign` reads CSRs anyone with
//! commit access can write.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = kaws::x509::verify_csr(data, Path::new("fuzz.csr"));
    // The same bytes as the DER inside a PEM frame reach the ASN.1 parser.
    let pem = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64(data)
    );
    let _ = kaws::x509::verify_csr(pem.as_bytes(), Path::new("fuzz.csr"));
    let _ = kaws::x509::parse_cert(data, Path::new("fuzz.pem"));
});

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
