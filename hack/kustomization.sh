# shellcheck shell=bash
# Sourced by the scripts that render config/: write_kustomization DIR CONFIG COMPONENT... writes
# DIR/kustomization.yaml over CONFIG/default plus the components. The paths are relative to DIR:
# kustomize refuses absolute paths to a base ("new root cannot be absolute").
write_kustomization() {
  local dir=$1 config=$2; shift 2
  mkdir -p "$dir"
  local rel c
  rel="$(realpath --relative-to="$dir" "$config")"
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources:"
    echo "  - $rel/default"
    if [ "$#" -gt 0 ]; then
      echo "components:"
      for c in "$@"; do echo "  - $rel/components/$c"; done
    fi
  } >"$dir/kustomization.yaml"
}
