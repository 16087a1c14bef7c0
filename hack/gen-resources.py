#!/usr/bin/env python3
"""Generates crates/api/src/generated/resources.rs: the catalogue of built-in resources
(group, version, resource, kind, scope, verbs, subresources) from upstream's OpenAPI v2
document, plus upstream's short names and categories (which OpenAPI does not carry).

Usage: python3 hack/gen-resources.py [path/to/kubernetes-1.33-swagger.json]
"""
import json, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
SWAGGER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "openapi", "kubernetes-1.33-swagger.json")
OUT = os.path.join(HERE, "..", "crates", "api", "src", "generated", "resources.rs")

# GA group-versions served (issue #3), in upstream's discovery order.
GROUP_VERSIONS = [
    ("", "v1"), ("apiregistration.k8s.io", "v1"), ("apps", "v1"), ("events.k8s.io", "v1"),
    ("authentication.k8s.io", "v1"), ("authorization.k8s.io", "v1"), ("autoscaling", "v2"),
    ("autoscaling", "v1"), ("batch", "v1"), ("certificates.k8s.io", "v1"), ("networking.k8s.io", "v1"),
    ("policy", "v1"), ("rbac.authorization.k8s.io", "v1"), ("storage.k8s.io", "v1"),
    ("admissionregistration.k8s.io", "v1"), ("apiextensions.k8s.io", "v1"), ("scheduling.k8s.io", "v1"),
    ("coordination.k8s.io", "v1"), ("node.k8s.io", "v1"), ("discovery.k8s.io", "v1"),
    ("flowcontrol.apiserver.k8s.io", "v1"),
]

SHORT_NAMES = {
    ("", "pods"): ["po"], ("", "services"): ["svc"], ("", "replicationcontrollers"): ["rc"],
    ("", "namespaces"): ["ns"], ("", "nodes"): ["no"], ("", "persistentvolumeclaims"): ["pvc"],
    ("", "persistentvolumes"): ["pv"], ("", "endpoints"): ["ep"], ("", "events"): ["ev"],
    ("", "configmaps"): ["cm"], ("", "serviceaccounts"): ["sa"], ("", "limitranges"): ["limits"],
    ("", "resourcequotas"): ["quota"], ("", "componentstatuses"): ["cs"],
    ("apps", "deployments"): ["deploy"], ("apps", "replicasets"): ["rs"], ("apps", "daemonsets"): ["ds"],
    ("apps", "statefulsets"): ["sts"], ("batch", "cronjobs"): ["cj"],
    ("autoscaling", "horizontalpodautoscalers"): ["hpa"], ("networking.k8s.io", "ingresses"): ["ing"],
    ("networking.k8s.io", "networkpolicies"): ["netpol"], ("policy", "poddisruptionbudgets"): ["pdb"],
    ("storage.k8s.io", "storageclasses"): ["sc"], ("scheduling.k8s.io", "priorityclasses"): ["pc"],
    ("certificates.k8s.io", "certificatesigningrequests"): ["csr"],
    ("apiextensions.k8s.io", "customresourcedefinitions"): ["crd", "crds"],
    ("events.k8s.io", "events"): ["ev"],
}
CATEGORIES = {
    ("", "pods"): ["all"], ("", "services"): ["all"], ("", "replicationcontrollers"): ["all"],
    ("apps", "deployments"): ["all"], ("apps", "replicasets"): ["all"], ("apps", "daemonsets"): ["all"],
    ("apps", "statefulsets"): ["all"], ("batch", "jobs"): ["all"], ("batch", "cronjobs"): ["all"],
    ("autoscaling", "horizontalpodautoscalers"): ["all"],
    ("apiextensions.k8s.io", "customresourcedefinitions"): ["api-extensions"],
    ("apiregistration.k8s.io", "apiservices"): ["api-extensions"],
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): ["api-extensions"],
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): ["api-extensions"],
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): ["api-extensions"],
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): ["api-extensions"],
}
VERB_OF = {"get": "get", "list": "list", "post": "create", "put": "update", "patch": "patch",
           "delete": "delete", "deletecollection": "deletecollection", "watch": "watch", "watchlist": "watch",
           "connect": "connect"}
ORDER = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

def resolve(doc, param):
    ref = param.get("$ref")
    return doc["parameters"][ref.split("/")[-1]] if ref else param

def main():
    doc = json.load(open(SWAGGER))
    res = {}  # (group, version, resource) -> dict
    for path, item in doc["paths"].items():
        for gv in GROUP_VERSIONS:
            base = "/api/v1/" if gv[0] == "" else f"/apis/{gv[0]}/{gv[1]}/"
            if gv[0] == "" and gv[1] != "v1":
                continue
            if not path.startswith(base):
                continue
            rest = path[len(base):]
            if rest.startswith("watch/"):
                continue
            namespaced = False
            m = re.match(r"namespaces/\{namespace\}/(.+)$", rest)
            if m:
                namespaced, rest = True, m.group(1)
            parts = rest.split("/")
            name = parts[0]
            if not name or "{" in name:
                continue
            sub = None
            if len(parts) == 1:
                level = "collection"
            elif parts[1] == "{name}" and len(parts) == 2:
                level = "item"
            elif parts[1] == "{name}" and len(parts) == 3:
                level, sub = "sub", parts[2]
            else:
                continue  # e.g. proxy/{path}
            r = res.setdefault((gv[0], gv[1], name), {"namespaced": namespaced, "verbs": set(), "kind": None, "subs": {}})
            if namespaced:
                r["namespaced"] = True
            for method, op in item.items():
                if method == "parameters":
                    continue
                action = op.get("x-kubernetes-action")
                gvk = op.get("x-kubernetes-group-version-kind", {})
                verb = VERB_OF.get(action)
                if verb is None:
                    continue
                if level == "sub":
                    s = r["subs"].setdefault(sub, {"verbs": set(), "gvk": gvk})
                    s["verbs"].add(verb if action != "connect" else method)
                    continue
                if action == "list":
                    # a list action with a watch parameter is also watchable
                    params = [resolve(doc, p).get("name") for p in item.get("parameters", []) + op.get("parameters", [])]
                    if "watch" in params:
                        r["verbs"].add("watch")
                r["verbs"].add(verb)
                if gvk and not r["kind"]:
                    r["kind"] = gvk
    out = []
    out.append("// @generated by hack/gen-resources.py from upstream's v1.33 OpenAPI document. Do not edit.\n")
    out.append("use crate::resources::{ResourceInfo, SubresourceInfo};\n\n")
    out.append("pub static BUILTIN: &[ResourceInfo] = &[\n")
    for gv in GROUP_VERSIONS:
        for (g, v, name), r in sorted(res.items()):
            if (g, v) != gv or not r["kind"]:
                continue
            kind = r["kind"]["kind"]
            verbs = [x for x in ORDER if x in r["verbs"]]
            subs = []
            for sname, s in sorted(r["subs"].items()):
                sg = s["gvk"]
                subs.append('SubresourceInfo { name: "%s", group: "%s", version: "%s", kind: "%s", verbs: &[%s] }' % (
                    sname, sg.get("group", ""), sg.get("version", ""), sg.get("kind", ""),
                    ", ".join('"%s"' % x for x in sorted(s["verbs"]))))
            out.append('    ResourceInfo {\n        group: "%s",\n        version: "%s",\n        resource: "%s",\n        kind: "%s",\n        namespaced: %s,\n        verbs: &[%s],\n        short_names: &[%s],\n        categories: &[%s],\n        subresources: &[%s],\n    },\n' % (
                g, v, name, kind, "true" if r["namespaced"] else "false",
                ", ".join('"%s"' % x for x in verbs),
                ", ".join('"%s"' % x for x in SHORT_NAMES.get((g, name), [])),
                ", ".join('"%s"' % x for x in CATEGORIES.get((g, name), [])),
                ", ".join(subs)))
    out.append("];\n")
    open(OUT, "w").write("".join(out))
    print(f"wrote {OUT}")

main()
