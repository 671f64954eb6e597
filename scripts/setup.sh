#!/usr/bin/env bash
# Installs everything ovnest needs to build, test and run its lab, idempotently:
# Debian packages (LLVM 22 for bpf-linker, iproute2/ethtool/tcpdump, real OVN and OVS),
# the pinned stable and nightly Rust toolchains, and bpf-linker built against LLVM 22.
# A second run only checks and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

packages=(
  llvm-22-dev libpolly-22-dev zlib1g-dev libzstd-dev libxml2-dev   # bpf-linker
  libssl-dev pkg-config                                             # ssl: remotes (OpenSSL, as OVS)
  iproute2 ethtool tcpdump procps iputils-ping                      # namespaces, veth, ping
  isc-dhcp-client traceroute                                        # the seed's dhclient, traceroute
  ovn-central ovn-host openvswitch-switch openvswitch-common        # real OVN + OVS
  podman containernetworking-plugins runc busybox-static            # a real runtime for ovnest-cni
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages start their daemons where systemd exists; ovnest runs its own.
  for svc in ovn-central ovn-host openvswitch-switch; do
    service "$svc" stop >/dev/null 2>&1 || true
  done
fi

stable=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
nightly=$(tr -d '[:space:]' < ebpf/NIGHTLY)
have_toolchain() { rustup toolchain list | grep -q "^$1"; }
if ! have_toolchain "$stable"; then
  log "rustup toolchain install $stable"
  rustup toolchain install "$stable" --profile minimal -c rustfmt -c clippy
fi
if ! have_toolchain "$nightly" || ! rustup component list --toolchain "$nightly" --installed | grep -q '^rust-src'; then
  log "rustup toolchain install $nightly (rust-src)"
  rustup toolchain install "$nightly" --profile minimal -c rust-src
fi

# bpf-linker must link with the same LLVM major as the nightly's rustc.
llvm_major=$(rustc +"$nightly" -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
want="bpf-linker 0.13"
if ! { command -v bpf-linker >/dev/null && bpf-linker --version 2>/dev/null | grep -q "^$want" \
       && [ -f "$HOME/.cargo/.ovnest-bpf-linker-llvm" ] && [ "$(cat "$HOME/.cargo/.ovnest-bpf-linker-llvm")" = "$llvm_major" ]; }; then
  log "cargo install bpf-linker 0.13 for LLVM $llvm_major"
  LLVM_PREFIX="/usr/lib/llvm-$llvm_major" cargo +"$stable" install bpf-linker --locked --version '^0.13' \
    --no-default-features --features "llvm-$llvm_major" --force
  echo "$llvm_major" > "$HOME/.cargo/.ovnest-bpf-linker-llvm"
fi
# Fuzzing (scripts/fuzz.sh): cargo-fuzz drives libFuzzer with the nightly above.
if ! cargo +"$stable" fuzz --version 2>/dev/null | grep -q "^cargo-fuzz 0.13"; then
  log "cargo install cargo-fuzz 0.13"
  cargo +"$stable" install cargo-fuzz --locked --version '^0.13'
fi
log "ok: $stable, $nightly (LLVM $llvm_major), $(bpf-linker --version | head -1), $(ovn-nbctl --version | head -1)"
