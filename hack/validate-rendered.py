#!/usr/bin/env python3
"""Validate rendered manifests offline (called by hack/validate-manifests.sh).

    hack/validate-rendered.py --kubernetes-version 1.33 RENDERED.yaml...

- Built-in kinds: kubernetes-validate against the Kubernetes OpenAPI schemas of that version,
  strict (an unknown field is an error, so a typo never passes silently).
- netheal.io kinds: JSON Schema validation against the openAPIV3Schema of our own CRD in
  config/crd (types, enums, bounds, required fields; the CEL rules are tested by the crds
  crate, not here).
- monitoring.coreos.com kinds (ServiceMonitor, PrometheusRule): their CRDs are not vendored, so
  they get structural checks only: required fields, every rule has `expr` and one of
  `alert`/`record`, every expression parses as PromQL (promql-parser, the parser of
  GreptimeDB's Rust PromQL implementation), and every netheal metric they use is one the
  binaries export. The Grafana dashboard's queries get the same PromQL and metric checks.
- ClusterRoles and Roles: no wildcards, no secrets, no escalate/bind/impersonate.
- Any other kind is an error: add it to this script on purpose.
Quiet on success; one line per problem and exit 1 otherwise.
"""

import argparse
import json
import pathlib
import re
import sys
import warnings

import yaml

warnings.filterwarnings("ignore", category=DeprecationWarning)
import jsonschema  # noqa: E402
import kubernetes_validate  # noqa: E402
import promql_parser  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "config/crd"

# The metrics of the team contract (docs/observability.md), plus the operator's policy info
# gauge used by the Enforce alert. Histograms expose _bucket/_sum/_count, counters _total.
METRICS = {
    "netheal_node_findings",
    "netheal_node_fixes_total",
    "netheal_node_scan_duration_seconds",
    "netheal_node_netlink_overruns_total",
    "netheal_node_last_report_timestamp_seconds",
    "netheal_node_api_errors_total",
    "netheal_actions_total",
    "netheal_open_findings",
    "netheal_flapping_findings",
    "netheal_nodes_in_flight",
    "netheal_reconcile_duration_seconds",
    "netheal_reconcile_errors_total",
    "netheal_leader",
    "netheal_policy_info",
}
METRIC_RE = re.compile(r"\bnetheal_[a-z0-9_]+")
RECORDING_RE = re.compile(r"\bnetheal:[a-z0-9_:]+")


def known_metric(name):
    if name in METRICS:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in METRICS:
            return True
    return False


def crd_schemas():
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        group = doc["spec"]["group"]
        kind = doc["spec"]["names"]["kind"]
        for version in doc["spec"]["versions"]:
            api_version = "%s/%s" % (group, version["name"])
            schemas[(api_version, kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def check_promql(where, expr, errors):
    # Grafana's interval variables are not PromQL: give them a duration before parsing.
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    try:
        promql_parser.parse(expr)
    except ValueError as err:
        errors.append("%s: not valid PromQL: %s" % (where, err))


FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}
FORBIDDEN_RESOURCES = {"*", "secrets", "serviceaccounts/token", "nodes/proxy", "pods/exec"}


def check_rbac(where, obj, errors):
    """netheal's roles stay least-privilege: no wildcards, no secrets, no privilege verbs."""
    for i, rule in enumerate(obj.get("rules") or []):
        here = "%s rule %d" % (where, i)
        if "*" in rule.get("apiGroups", []):
            errors.append("%s: wildcard apiGroups" % here)
        for resource in rule.get("resources", []):
            if resource in FORBIDDEN_RESOURCES:
                errors.append("%s: must not grant %s" % (here, resource))
        for verb in rule.get("verbs", []):
            if verb in FORBIDDEN_VERBS:
                errors.append("%s: must not grant verb %s" % (here, verb))
        if rule.get("nonResourceURLs"):
            errors.append("%s: must not grant nonResourceURLs" % here)


def check_metrics(where, text, errors):
    for name in sorted(set(METRIC_RE.findall(text))):
        if not known_metric(name):
            errors.append("%s: unknown metric %s (not exported by netheal)" % (where, name))


def check_prometheus_rule(where, obj, errors):
    groups = obj.get("spec", {}).get("groups")
    if not groups:
        errors.append("%s: spec.groups is empty" % where)
        return
    recorded = set()
    for group in groups:
        for rule in group.get("rules", []):
            if "record" in rule:
                recorded.add(rule["record"])
    for group in groups:
        if not group.get("name"):
            errors.append("%s: a rule group has no name" % where)
        for i, rule in enumerate(group.get("rules", [])):
            here = "%s: group %s rule %d" % (where, group.get("name"), i)
            if not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
                errors.append("%s: no expr" % here)
                continue
            if ("alert" in rule) == ("record" in rule):
                errors.append("%s: needs exactly one of alert and record" % here)
            if "alert" in rule:
                if not rule.get("annotations", {}).get("summary"):
                    errors.append("%s (%s): no summary annotation" % (here, rule["alert"]))
                if "severity" not in rule.get("labels", {}):
                    errors.append("%s (%s): no severity label" % (here, rule["alert"]))
            check_promql(here, rule["expr"], errors)
            check_metrics(here, rule["expr"], errors)
            for used in RECORDING_RE.findall(rule["expr"]):
                if used not in recorded:
                    errors.append("%s: uses recording rule %s that is not defined" % (here, used))


def check_service_monitor(where, obj, errors):
    spec = obj.get("spec", {})
    if not spec.get("selector"):
        errors.append("%s: spec.selector is missing" % where)
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        errors.append("%s: spec.endpoints is empty" % where)
    for endpoint in endpoints:
        if "port" not in endpoint and "targetPort" not in endpoint:
            errors.append("%s: an endpoint names no port" % where)


def validate_file(path, version, schemas, errors):
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as err:
        errors.append("%s: not YAML: %s" % (path, err))
        return
    for obj in docs:
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        name = obj.get("metadata", {}).get("name", "?")
        where = "%s: %s %s" % (path.name, kind, name)
        group = api_version.split("/")[0] if "/" in api_version else ""
        if group == "netheal.io":
            schema = schemas.get((api_version, kind))
            if schema is None:
                errors.append("%s: no CRD in config/crd serves %s" % (where, api_version))
                continue
            validator = jsonschema.Draft4Validator(schema)
            for err in sorted(validator.iter_errors(obj), key=lambda e: list(e.path)):
                field = ".".join(str(p) for p in err.path) or "(root)"
                errors.append("%s: %s: %s" % (where, field, err.message))
        elif group == "monitoring.coreos.com":
            if kind == "PrometheusRule":
                check_prometheus_rule(where, obj, errors)
            elif kind == "ServiceMonitor":
                check_service_monitor(where, obj, errors)
            else:
                errors.append("%s: no check for this monitoring.coreos.com kind" % where)
        else:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                field = ".".join(str(p) for p in err.path) or "(root)"
                errors.append("%s: %s: %s" % (where, field, err.message))
            except kubernetes_validate.SchemaNotFoundError:
                errors.append("%s: no Kubernetes %s schema for %s (an unexpected kind?)"
                              % (where, version, api_version))
        if kind in ("ClusterRole", "Role"):
            check_rbac(where, obj, errors)
        if kind == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                if key.endswith(".json"):
                    check_dashboard("%s[%s]" % (where, key), value, errors)


def check_dashboard(where, text, errors):
    try:
        dashboard = json.loads(text)
    except json.JSONDecodeError as err:
        errors.append("%s: not JSON: %s" % (where, err))
        return
    if not dashboard.get("panels"):
        errors.append("%s: no panels" % where)
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if "expr" in target:
                check_promql("%s panel %r" % (where, panel.get("title")), target["expr"], errors)
                check_metrics("%s panel %r" % (where, panel.get("title")), target["expr"], errors)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubernetes-version", default="1.33")
    parser.add_argument("files", nargs="+", type=pathlib.Path)
    args = parser.parse_args()
    schemas = crd_schemas()
    errors = []
    for path in args.files:
        validate_file(path, args.kubernetes_version, schemas, errors)
    for line in errors:
        print(line, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
