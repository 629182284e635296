//! The Terraform side of kaws: the module it ships, each cluster's entry
//! point, and running the `terraform` binary.

use crate::error::{Error, Result};
use crate::fsutil::Staging;
use crate::settings::ClusterSettings;

include!(concat!(env!("OUT_DIR"), "/module_files.rs"));

/// Where the module lives inside a kaws repository.
pub const MODULE_DIR: &str = "terraform/modules/kaws";

/// The module source of a cluster's entry point, relative to `clusters/<c>/`.
pub const DEFAULT_SOURCE: &str = "../../terraform/modules/kaws";

/// A module source goes into an HCL string: refuse anything that could
/// break out of it.
pub fn validate_source(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 1024
        && !s.chars().any(|c| c.is_control() || c == '"' || c == '\\')
        && !s.contains("${")
        && !s.contains("%{");
    if ok {
        Ok(())
    } else {
        Err(Error::input(format!("invalid Terraform module source {:?}", s.chars().take(100).collect::<String>()))
            .with_hint("give a module source Terraform accepts, such as git::https://example.com/kaws.git//terraform/modules/kaws?ref=v1, without quotes or backslashes"))
    }
}

const TERRAFORM_README: &str = "\
# Terraform

`modules/kaws/` is the Terraform module that describes a kaws cluster on AWS.
It was written by `kaws init` and matches the version of kaws recorded in
`../kaws.json`.

Each cluster's entry point is `clusters/<cluster>/main.tf`, written by
`kaws cluster init`: it instantiates this module with the variables of
`clusters/<cluster>/terraform.tfvars.json`. Run it with
`kaws cluster plan|apply|destroy|output|refresh <cluster>`.
";

/// Write the module into a repository being created.
pub fn write_module(staging: &Staging) -> Result<()> {
    for dir in ["terraform", "terraform/modules", MODULE_DIR] {
        let p = staging.path().join(dir);
        std::fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e))?;
    }
    staging.write("terraform/README.md", TERRAFORM_README.as_bytes())?;
    for (name, content) in MODULE_FILES {
        let rel = format!("{MODULE_DIR}/{name}");
        if let Some(parent) = std::path::Path::new(&rel).parent() {
            let p = staging.path().join(parent);
            std::fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e))?;
        }
        staging.write(&rel, content.as_bytes())?;
    }
    Ok(())
}

/// The cluster's Terraform entry point, `clusters/<c>/main.tf`.
pub fn entry_point(settings: &ClusterSettings, source: &str) -> String {
    let backend = if settings.state_bucket.is_empty() {
        "  backend \"local\" {\n    path = \"terraform.tfstate\"\n  }\n".to_string()
    } else {
        format!(
            "  backend \"s3\" {{\n    bucket       = \"{}\"\n    key          = \"kaws/{}/terraform.tfstate\"\n    region       = \"{}\"\n    encrypt      = true\n    use_lockfile = true\n  }}\n",
            settings.state_bucket, settings.cluster, settings.region
        )
    };
    ENTRY_POINT
        .replace("@BACKEND@", &backend)
        .replace("@SOURCE@", source)
        .replace("@CLUSTER@", &settings.cluster)
}

const ENTRY_POINT: &str = include_str!("entry_point.tf.in");
