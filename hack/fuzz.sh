#!/usr/bin/env bash
# Fuzz the parsers that read outside input (fuzz/fuzz_targets: iptables-save output, nft -j output,
# flannel's lease, the IPVS table and kube-proxy's service-ips map, policy
# documents, sysctl values, order parameters) with cargo-fuzz (libFuzzer), FUZZ_SECONDS each
# (default 60), starting from and adding to the corpus in fuzz/corpus/<target>. A crash fails
# with the input libFuzzer saved under fuzz/artifacts/<target>/; reproduce it with
#   cargo fuzz run <target> fuzz/artifacts/<target>/<file>
# libFuzzer's instrumentation needs compiler flags that only nightly accepts; on a stable
# toolchain RUSTC_BOOTSTRAP=1 lets the same compiler accept them (no other toolchain needed).
# Prints `figure: fuzz.<target>.runs N runs` and `.exec_per_s`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

seconds="${FUZZ_SECONDS:-60}"
read -r -a targets <<<"${FUZZ_TARGETS:-iptables_save nft_ruleset policy_document sysctl_values order_parameters node_tables}"
command -v cargo-fuzz >/dev/null 2>&1 || {
  echo "fuzz: cargo-fuzz is missing: cargo install --locked cargo-fuzz" >&2
  exit 1
}
if ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi
cargo fuzz build -O
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  if ! cargo fuzz run -O "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $target found a crash; the input is in fuzz/artifacts/$target/" >&2
    rm -f "$log"
    exit 1
  fi
  runs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $NF}' "$log")
  echo "fuzz: $target: ${runs:-?} runs in ${seconds}s, no crash"
  echo "figure: fuzz.$target.runs ${runs:-0} runs"
  echo "figure: fuzz.$target.exec_per_s ${rate:-0} 1/s"
  rm -f "$log"
done
