#!/usr/bin/env bash
# Install what kaws' tests and quickstart need and a fresh machine may lack.
# Idempotent: each tool is installed only when missing.
set -euo pipefail

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v strace >/dev/null || need_apt+=(strace)
# The boot judges: what servers receive is handed to the programs that read it.
command -v ignition-validate >/dev/null || need_apt+=(ignition)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v etcdctl >/dev/null || need_apt+=(etcd-client)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get"
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian's etcd-server package starts a member on the default ports when it
# can; the tests start their own on free ports and need no other.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
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
