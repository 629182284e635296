#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and end-to-end tests (the
# latter against a real moto server, real Terraform and the real AWS
# provider, with openssl, kubectl and the aws CLI as judges). It includes
# tests/policy.rs and tests/terraform.rs, where parliament (the IAM policy
# linter) judges the key policy kaws prints and the role policies IAM
# returns after an apply, and tests/guides.rs, which pastes every guide.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-tools.sh
cargo fmt --check
if command -v terraform >/dev/null; then
  terraform fmt -check -recursive terraform
fi
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
