#!/usr/bin/env bash
# Runs ovnest's fuzz targets (fuzz/: cargo-fuzz, libFuzzer, AddressSanitizer) with the
# nightly pinned in ebpf/NIGHTLY, each from its corpus kept in fuzz/corpus/<target>.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    default: 8 s, every target
#
# New inputs go to a scratch directory (the repository's corpus only changes when you copy
# them in); a crash, a hang (-timeout) or an allocation beyond -malloc_limit_mb fails the
# run and leaves the input in fuzz/artifacts/<target>/. Prints one line per target:
#   FUZZ| target | seconds | executions | exec/s | corpus | result
# FUZZ_SEED fixes libFuzzer's seed (CI sets it, so a run there explores the same inputs as
# the same command did here); unset, each run explores new ground.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-8}"
shift || true
nightly=$(tr -d '[:space:]' < ebpf/NIGHTLY)
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^ovnest-fuzz$')
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if ((${#targets[@]} == 1)); then
  (cd fuzz && cargo +"$nightly" fuzz build "${targets[0]}")
else
  (cd fuzz && cargo +"$nightly" fuzz build)
fi
failed=0
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target" "fuzz/artifacts/$target"
  log="$scratch/$target.log"
  if (cd fuzz && cargo +"$nightly" fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" ${FUZZ_SEED:+-seed="$FUZZ_SEED"}) \
        >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed=1
    tail -40 "$log" >&2
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(ls "$scratch/$target" "fuzz/corpus/$target" | wc -l)
  echo "FUZZ| $target | ${seconds} s | ${execs:-?} | ${rate:-?}/s | $units inputs | $result"
done
exit "$failed"
