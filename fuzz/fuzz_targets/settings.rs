//! terraform.tfvars.json: a cluster's settings, as committed to git.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) =
        kaws::settings::ClusterSettings::from_json(data, Path::new("terraform.tfvars.json"))
    {
        // Whatever is accepted must be written back and read again the same.
        let again = kaws::settings::ClusterSettings::from_json(&s.to_json(), Path::new("x"))
            .expect("accepted settings re-read");
        assert_eq!(s, again);
    }
});
