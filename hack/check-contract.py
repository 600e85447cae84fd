#!/usr/bin/env python3
"""Check the rendered install against the deployment contract (called by validate-manifests.sh).

    hack/check-contract.py RENDERED.yaml

The properties docs/architecture.md promises, so that an edit that weakens one fails CI:
operator Deployment (2 replicas, probes on 8080, non-root, read-only root, no privilege
escalation, ALL capabilities dropped, seccomp RuntimeDefault, POD_NAMESPACE from the downward
API), its PodDisruptionBudget, node-fixer DaemonSet (hostNetwork, ClusterFirstWithHostNet,
tolerates every taint, system-node-critical, not privileged, exactly NET_ADMIN/NET_RAW/SYS_ADMIN,
only the documented host paths, RollingUpdate 10 %, probes on 9750, NODE_NAME from the
downward API), and the exact RBAC rules of each service account.
"""

import sys

import yaml

OPERATOR_RULES = {
    ("netheal.io", "networkhealthpolicies"): {"get", "list", "watch"},
    ("netheal.io", "networkhealthpolicies/status"): {"patch", "update"},
    ("netheal.io", "nodenetworkreports"): {"get", "list", "watch", "patch"},
    ("", "nodes"): {"get", "list", "watch"},
    ("", "pods"): {"get", "list", "watch", "delete"},
    ("", "pods/eviction"): {"create"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("openreports.io", "clusterreports"): {"get", "list", "create", "patch", "delete"},
}
LEADER_RULES = {
    ("coordination.k8s.io", "leases"): {"create", "get", "update", "patch"},
}
NODE_FIXER_RULES = {
    ("netheal.io", "networkhealthpolicies"): {"get", "list", "watch"},
    ("netheal.io", "nodenetworkreports"): {"get", "list", "watch", "create"},
    ("netheal.io", "nodenetworkreports/status"): {"patch", "update"},
    ("", "nodes"): {"get", "list", "watch"},
    ("", "services"): {"get", "list", "watch"},
    ("crd.projectcalico.org", "blockaffinities"): {"get", "list", "watch"},
}
HOST_PATHS = {
    "/proc/sys/net": "/host/proc/sys/net",
    "/var/run/netns": "/var/run/netns",
    "/run/xtables.lock": "/run/xtables.lock",
    "/etc/sysctl.d": "/host/etc/sysctl.d",
    "/run/flannel": "/host/run/flannel",
}


def index(docs):
    return {(d.get("kind"), d.get("metadata", {}).get("name")): d for d in docs if d}


def grants(role):
    out = {}
    for rule in role.get("rules", []):
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                out.setdefault((group, resource), set()).update(rule.get("verbs", []))
    return out


def env_field(container, name):
    for env in container.get("env", []):
        if env.get("name") == name:
            return env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    return None


def check(objs):
    errors = []

    def expect(cond, message):
        if not cond:
            errors.append(message)

    dep = objs.get(("Deployment", "netheal-operator"))
    expect(dep is not None, "no Deployment netheal-operator")
    if dep:
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        c = pod["containers"][0]
        sc = c.get("securityContext", {})
        psc = pod.get("securityContext", {})
        expect(dep["metadata"].get("namespace") == "netheal-system", "operator: namespace")
        expect(spec.get("replicas") == 2, "operator: 2 replicas")
        expect(pod.get("serviceAccountName") == "netheal-operator", "operator: service account")
        expect(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "operator: liveness /healthz")
        expect(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "operator: readiness /readyz")
        expect(any(p.get("containerPort") == 8080 for p in c.get("ports", [])), "operator: port 8080")
        expect(psc.get("runAsNonRoot") is True and sc.get("runAsNonRoot", True) is True, "operator: non-root")
        expect(sc.get("readOnlyRootFilesystem") is True, "operator: read-only root filesystem")
        expect(sc.get("allowPrivilegeEscalation") is False, "operator: no privilege escalation")
        expect(sc.get("privileged", False) is False, "operator: not privileged")
        expect(sc.get("capabilities", {}).get("drop") == ["ALL"], "operator: drop ALL capabilities")
        expect(not sc.get("capabilities", {}).get("add"), "operator: adds no capability")
        expect((sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
               "operator: seccomp RuntimeDefault")
        expect(env_field(c, "POD_NAMESPACE") == "metadata.namespace", "operator: POD_NAMESPACE from the downward API")
        for kind in ("requests", "limits"):
            res = c.get("resources", {}).get(kind, {})
            expect("cpu" in res and "memory" in res, "operator: resource %s for cpu and memory" % kind)

    pdb = objs.get(("PodDisruptionBudget", "netheal-operator"))
    expect(pdb is not None and pdb["spec"].get("minAvailable") == 1, "operator: PodDisruptionBudget minAvailable 1")
    svc = objs.get(("Service", "netheal-operator-metrics"))
    expect(svc is not None, "operator: metrics Service")

    ds = objs.get(("DaemonSet", "netheal-node-fixer"))
    expect(ds is not None, "no DaemonSet netheal-node-fixer")
    if ds:
        spec = ds["spec"]
        pod = spec["template"]["spec"]
        c = pod["containers"][0]
        sc = c.get("securityContext", {})
        expect(pod.get("hostNetwork") is True, "node-fixer: hostNetwork")
        expect(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "node-fixer: dnsPolicy ClusterFirstWithHostNet")
        expect({"operator": "Exists"} in pod.get("tolerations", []), "node-fixer: tolerates every taint")
        expect(pod.get("priorityClassName") == "system-node-critical", "node-fixer: system-node-critical")
        expect(not pod.get("hostPID") and not pod.get("hostIPC"), "node-fixer: no hostPID/hostIPC")
        expect(pod.get("serviceAccountName") == "netheal-node-fixer", "node-fixer: service account")
        expect(sc.get("privileged", False) is False, "node-fixer: not privileged")
        caps = sc.get("capabilities", {})
        expect(caps.get("drop") == ["ALL"], "node-fixer: drop ALL capabilities")
        expect(sorted(caps.get("add", [])) == ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"],
               "node-fixer: exactly NET_ADMIN, NET_RAW, SYS_ADMIN (got %s)" % caps.get("add"))
        expect(sc.get("readOnlyRootFilesystem") is True, "node-fixer: read-only root filesystem")
        expect((sc.get("seccompProfile") or pod.get("securityContext", {}).get("seccompProfile") or {}).get("type")
               == "RuntimeDefault", "node-fixer: seccomp RuntimeDefault")
        upd = spec.get("updateStrategy", {})
        expect(upd.get("type") == "RollingUpdate" and upd.get("rollingUpdate", {}).get("maxUnavailable") == "10%",
               "node-fixer: RollingUpdate maxUnavailable 10%")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c.get(probe, {}).get("httpGet", {})
            expect(get.get("path") == path and get.get("port") in (9750, "metrics"),
                   "node-fixer: %s %s on 9750" % (probe, path))
        expect(env_field(c, "NODE_NAME") == "spec.nodeName", "node-fixer: NODE_NAME from the downward API")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        host = {v["hostPath"]["path"]: name for name, v in volumes.items() if "hostPath" in v}
        expect(set(host) == set(HOST_PATHS), "node-fixer: host paths %s, expected %s" % (sorted(host), sorted(HOST_PATHS)))
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        for path, target in HOST_PATHS.items():
            name = host.get(path)
            mount = mounts.get(name) if name else None
            expect(mount is not None and mount.get("mountPath") == target,
                   "node-fixer: host %s mounted at %s" % (path, target))
        netns = mounts.get(host.get("/var/run/netns", ""), {})
        expect(netns.get("mountPropagation") == "HostToContainer", "node-fixer: netns mountPropagation HostToContainer")
        flannel = mounts.get(host.get("/run/flannel", ""), {})
        expect(flannel.get("readOnly") is True, "node-fixer: /run/flannel mounted read-only")
        lock = volumes.get(host.get("/run/xtables.lock", ""), {})
        expect(lock.get("hostPath", {}).get("type") == "FileOrCreate", "node-fixer: xtables lock FileOrCreate")

    for (kind, name), want in (
        (("ClusterRole", "netheal-operator"), OPERATOR_RULES),
        (("Role", "netheal-operator-leader-election"), LEADER_RULES),
        (("ClusterRole", "netheal-node-fixer"), NODE_FIXER_RULES),
    ):
        role = objs.get((kind, name))
        if role is None:
            errors.append("no %s %s" % (kind, name))
            continue
        got = grants(role)
        if got != want:
            errors.append("%s %s grants %s, expected %s" % (kind, name, sorted(
                (g, r, sorted(v)) for (g, r), v in got.items()), sorted((g, r, sorted(v)) for (g, r), v in want.items())))
    role = objs.get(("Role", "netheal-operator-leader-election"))
    if role:
        expect(role["metadata"].get("namespace") == "netheal-system", "leader election Role in netheal-system")
    for binding, sa in (("netheal-operator", "netheal-operator"), ("netheal-node-fixer", "netheal-node-fixer")):
        b = objs.get(("ClusterRoleBinding", binding))
        expect(b is not None and b["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "netheal-system"}],
               "ClusterRoleBinding %s binds only %s" % (binding, sa))
    return errors


def main():
    docs = []
    for path in sys.argv[1:]:
        with open(path) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d)
    errors = check(index(docs))
    for line in errors:
        print("contract: " + line, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
