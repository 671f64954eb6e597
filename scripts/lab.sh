#!/usr/bin/env bash
# The seed lab, one command: real OVN (NB, SB, northd), the VMs and containers in network
# namespaces, vm5's OVS tagging bridge, and ovnest on the hypervisor namespace.
#   scripts/lab.sh up      install what is missing, build, bring the lab up, print what to try
#   scripts/lab.sh env     print the environment for driving the lab's OVN by hand
#   scripts/lab.sh down    remove everything the lab made
# Extra arguments go to `ovnest lab CMD` (e.g. --dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-up}
shift || true
if [ "$cmd" = up ] || [ ! -x target/release/ovnest ]; then
  scripts/setup.sh >&2
  cargo build --release -p ovnest-cli >&2
fi
exec target/release/ovnest lab "$cmd" "$@"
