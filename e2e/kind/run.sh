#!/usr/bin/env bash
# netheal on a real cluster: kind with flannel, images built here, netheal installed from
# config/default, an IpForward fault injected on a worker, DryRun finding, then Enforce and
# the fix, checked on the node itself.
#
#   e2e/kind/run.sh                     (make e2e-kind)
#
# Needs docker, kind and kubectl, and network access for the flannel manifest, the CNI plugins
# and the base images. Environment:
#   CLUSTER_NAME    kind cluster name (default netheal-e2e); an existing one is reused
#   KIND_NODE_IMAGE node image (default kindest/node:v1.33.1)
#   FLANNEL_MANIFEST, CNI_PLUGINS_VERSION   what flannel needs (kind ships no bridge plugin)
#   IMAGE_TAG       tag of the images built and loaded (default e2e)
#   COMPONENTS      space-separated config/components to add (default "flannel")
#   TIMEOUT         seconds to wait for each step (default 300)
#   KEEP_CLUSTER=1  leave the cluster running at the end (default: delete it if created here)
set -euo pipefail

CLUSTER_NAME="${CLUSTER_NAME:-netheal-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.33.1}"
FLANNEL_MANIFEST="${FLANNEL_MANIFEST:-https://github.com/flannel-io/flannel/releases/download/v0.26.7/kube-flannel.yml}"
CNI_PLUGINS_VERSION="${CNI_PLUGINS_VERSION:-v1.6.2}"
IMAGE_TAG="${IMAGE_TAG:-e2e}"
COMPONENTS="${COMPONENTS:-flannel}"
TIMEOUT="${TIMEOUT:-300}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
OPERATOR_IMAGE="ghcr.io/netheal/netheal-operator:${IMAGE_TAG}"
NODE_FIXER_IMAGE="ghcr.io/netheal/netheal-node-fixer:${IMAGE_TAG}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'e2e-kind: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

work="$(mktemp -d)"
created_cluster=0

diagnostics() {
  log "diagnostics"
  kubectl get nodes -o wide || true
  kubectl -n netheal-system get pods -o wide || true
  kubectl get nhp -o yaml || true
  kubectl get nnr -o yaml || true
  kubectl -n netheal-system logs deploy/netheal-operator --all-containers --tail=200 || true
  kubectl -n netheal-system logs ds/netheal-node-fixer --all-containers --tail=200 || true
}

cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then diagnostics; fi
  rm -rf "$work"
  if [ "$created_cluster" = 1 ] && [ "$KEEP_CLUSTER" != 1 ]; then
    kind delete cluster --name "$CLUSTER_NAME" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

# wait_for DESCRIPTION COMMAND...: retry COMMAND every 3 s until it succeeds or TIMEOUT.
wait_for() {
  local what="$1"; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${TIMEOUT}s waiting for: $what"
    sleep 3
  done
}

# 1. A kind cluster without its default CNI, with flannel's pod CIDR.
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  log "reusing kind cluster $CLUSTER_NAME"
else
  log "creating kind cluster $CLUSTER_NAME ($KIND_NODE_IMAGE)"
  cat >"$work/kind.yaml" <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: true
  podSubnet: 10.244.0.0/16
nodes:
  - role: control-plane
  - role: worker
  - role: worker
YAML
  kind create cluster --name "$CLUSTER_NAME" --image "$KIND_NODE_IMAGE" --config "$work/kind.yaml"
  created_cluster=1
fi
kubectl config use-context "kind-$CLUSTER_NAME" >/dev/null

# 2. flannel. kind's node image carries only ptp/host-local/portmap/loopback: add the standard
#    CNI plugins (flannel delegates to `bridge`).
mapfile -t nodes < <(kind get nodes --name "$CLUSTER_NAME")
[ "${#nodes[@]}" -ge 2 ] || die "expected at least two nodes, got ${#nodes[@]}"
arch="$(docker exec "${nodes[0]}" uname -m)"
case "$arch" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
for node in "${nodes[@]}"; do
  if ! docker exec "$node" test -x /opt/cni/bin/bridge; then
    log "installing CNI plugins $CNI_PLUGINS_VERSION on $node"
    docker exec "$node" sh -c "curl -fsSL https://github.com/containernetworking/plugins/releases/download/${CNI_PLUGINS_VERSION}/cni-plugins-linux-${arch}-${CNI_PLUGINS_VERSION}.tgz | tar -xz -C /opt/cni/bin"
  fi
done
log "installing flannel"
kubectl apply -f "$FLANNEL_MANIFEST" >/dev/null
wait_for "all nodes Ready" kubectl wait --for=condition=Ready nodes --all --timeout=10s

# 3. Images, built here and loaded into every node.
log "building images (tag $IMAGE_TAG)"
docker build --target operator -t "$OPERATOR_IMAGE" .
docker build --target node-fixer -t "$NODE_FIXER_IMAGE" .
kind load docker-image --name "$CLUSTER_NAME" "$OPERATOR_IMAGE" "$NODE_FIXER_IMAGE"

# 4. netheal: CRDs first (a custom resource in the same apply fails until its CRD is
#    established), then config/default with the test's image tag and components.
log "installing netheal (components: ${COMPONENTS:-none})"
kubectl apply -k config/crd >/dev/null
kubectl wait --for=condition=Established --timeout="${TIMEOUT}s" \
  crd/networkhealthpolicies.netheal.io crd/nodenetworkreports.netheal.io >/dev/null
overlay="$work/overlay"
mkdir -p "$overlay"
rel="$(realpath --relative-to="$overlay" "$root/config")"
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - $rel/default"
  if [ -n "$COMPONENTS" ]; then
    echo "components:"
    for c in $COMPONENTS; do echo "  - $rel/components/$c"; done
  fi
  # Approve only SetSysctl, so that nothing else on the nodes is touched in Enforce.
  echo "patches:"
  echo "  - target: {group: netheal.io, kind: NetworkHealthPolicy, name: baseline}"
  echo "    patch: |-"
  echo "      - op: add"
  echo "        path: /spec/remediation"
  echo "        value: {actions: [SetSysctl]}"
  echo "images:"
  echo "  - name: ghcr.io/netheal/netheal-operator"
  echo "    newTag: $IMAGE_TAG"
  echo "  - name: ghcr.io/netheal/netheal-node-fixer"
  echo "    newTag: $IMAGE_TAG"
} >"$overlay/kustomization.yaml"
kubectl apply -k "$overlay" >/dev/null
kubectl -n netheal-system rollout status deploy/netheal-operator --timeout="${TIMEOUT}s"
kubectl -n netheal-system rollout status ds/netheal-node-fixer --timeout="${TIMEOUT}s"

# Every node reports.
reports_complete() {
  local want have
  want="$(kubectl get nodes -o name | wc -l)"
  have="$(kubectl get nnr -o name | wc -l)"
  [ "$have" -ge "$want" ]
}
wait_for "a NodeNetworkReport from every node" reports_complete

# 5. The fault: ip_forward=0 on the first worker (a hardening tool resetting it at boot).
victim="$(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o jsonpath='{.items[0].metadata.name}')"
[ -n "$victim" ] || die "no worker node"
log "injecting IpForward on $victim"
docker exec "$victim" sysctl -w net.ipv4.ip_forward=0 >/dev/null

victim_findings() {
  kubectl get nhp baseline -o jsonpath='{range .status.findings[*]}{.node} {.check}{"\n"}{end}'
}
finding_on_victim() {
  local findings
  findings="$(victim_findings)" || return 1
  grep -qx "$victim IpForward" <<<"$findings"
}
wait_for "the IpForward finding on $victim in the DryRun policy" finding_on_victim
[ "$(docker exec "$victim" sysctl -n net.ipv4.ip_forward)" = 0 ] \
  || die "DryRun changed net.ipv4.ip_forward on $victim"
log "DryRun reported the finding and changed nothing"

# 6. Enforce, and wait for the fix on the node and its record in the policy status.
log "switching policy baseline to Enforce"
kubectl patch nhp baseline --type merge -p '{"spec":{"mode":"Enforce"}}' >/dev/null

fixed_on_node() { [ "$(docker exec "$victim" sysctl -n net.ipv4.ip_forward)" = 1 ]; }
wait_for "net.ipv4.ip_forward=1 on $victim" fixed_on_node

action_recorded() {
  kubectl get nhp baseline \
    -o jsonpath='{range .status.actions[*]}{.node} {.action} {.outcome} {.dryRun}{"\n"}{end}' \
    | grep -qx "$victim SetSysctl Applied false"
}
wait_for "an Applied SetSysctl action for $victim in the policy status" action_recorded

finding_cleared() {
  local findings
  findings="$(victim_findings)" || return 1
  ! grep -qx "$victim IpForward" <<<"$findings"
}
wait_for "the IpForward finding on $victim to clear" finding_cleared

log "PASS: IpForward on $victim found in DryRun, fixed in Enforce, recorded, and cleared"
