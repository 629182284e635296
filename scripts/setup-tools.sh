#!/usr/bin/env bash
# Install what kaws' tests and quickstart need and a fresh machine may lack.
# Idempotent: each tool is installed only when missing.
set -euo pipefail

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v strace >/dev/null || need_apt+=(strace)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get"
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import moto.server' 2>/dev/null; then
  echo "setup: installing moto[server] with pip"
  python3 -m pip install -q 'moto[server]'
fi
if ! python3 -c 'import parliament' 2>/dev/null; then
  # The IAM policy linter that judges every policy kaws writes or prints.
  echo "setup: installing parliament with pip"
  python3 -m pip install -q parliament
  # parliament 1.6 imports pkg_resources, which recent setuptools no longer
  # ships; an older setuptools brings it back.
  if ! python3 -c 'import parliament' 2>/dev/null; then
    echo "setup: parliament needs pkg_resources; installing setuptools<81 with pip"
    python3 -m pip install -q 'setuptools<81'
  fi
fi
if ! command -v aws >/dev/null; then
  echo "setup: installing the aws CLI with pip"
  python3 -m pip install -q awscli
fi

for tool in terraform kubectl cargo; do
  if ! command -v "$tool" >/dev/null; then
    echo "setup: $tool is required but not installed; install it, then run this again" >&2
    exit 1
  fi
done
