#!/usr/bin/env bash
# The alerts, proven: `promtool check rules` and `promtool test rules` (Debian's `prometheus`
# package) on the rule groups of config/prometheus/rules.yaml (a PrometheusRule: its `spec` is
# a rule file), with the unit tests of config/prometheus/rules.test.yaml. Writes nothing in the
# repository.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v promtool >/dev/null 2>&1 || {
  echo "check-prometheus-rules: promtool is missing (apt-get install prometheus)" >&2
  exit 1
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The PrometheusRule's spec, dedented: `groups:` at the top level.
sed -n '/^spec:/,$p' "$root/config/prometheus/rules.yaml" | tail -n +2 | sed 's/^  //' >"$work/rules.yaml"
cp "$root/config/prometheus/rules.test.yaml" "$work/rules.test.yaml"
promtool check rules "$work/rules.yaml"
promtool test rules "$work/rules.test.yaml"
