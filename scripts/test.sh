#!/usr/bin/env bash
# Runs ovnest's whole test suite on this machine: unit tests, the XDP program through
# BPF_PROG_TEST_RUN and on veths in network namespaces, and the tests against real
# ovsdb-server / ovn-northd. Needs root (namespaces, BPF). Installs what is missing first.
# With CI=true a test that cannot run (not root, tool missing) fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
