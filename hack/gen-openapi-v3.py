#!/usr/bin/env python3
"""Generates the OpenAPI v3 documents the API server serves at /openapi/v3/<group-version>
from upstream's v1.33 OpenAPI v2 document: one OpenAPI 3.0 document per served
group-version with its paths (parameters resolved, body parameters as requestBody, GVK
extensions kept) and the schemas they reference (as components.schemas).

Usage: python3 hack/gen-openapi-v3.py [path/to/kubernetes-1.33-swagger.json]
Writes crates/apiserver/openapi/v3/*.json (minified) and crates/apiserver/src/openapi_files.rs.
"""
import json, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
SWAGGER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "openapi", "kubernetes-1.33-swagger.json")
OUT = os.path.join(HERE, "..", "crates", "apiserver", "openapi", "v3")
GEN_RESOURCES = os.path.join(HERE, "..", "crates", "api", "src", "generated", "resources.rs")

def served_group_versions():
    text = open(GEN_RESOURCES).read()
    pairs = re.findall(r'group: "([^"]*)",\s*version: "([^"]*)"', text)
    skip = set()
    out = []
    for p in pairs:
        if p not in out and p not in skip:
            out.append(p)
    return out

def rewrite_refs(node):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out[k] = v.replace("#/definitions/", "#/components/schemas/")
            else:
                out[k] = rewrite_refs(v)
        return out
    if isinstance(node, list):
        return [rewrite_refs(x) for x in node]
    return node

def collect_refs(node, acc):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/definitions/"):
                acc.add(v[len("#/definitions/"):])
            else:
                collect_refs(v, acc)
    elif isinstance(node, list):
        for x in node:
            collect_refs(x, acc)

CONSUMES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]

def convert_param(doc, p):
    if "$ref" in p:
        p = doc["parameters"][p["$ref"].split("/")[-1]]
    if p.get("in") == "body":
        return None, p
    q = {"name": p["name"], "in": p["in"]}
    for k in ("description", "required"):
        if k in p:
            q[k] = p[k]
    schema = {k: p[k] for k in ("type", "uniqueItems", "format") if k in p}
    q["schema"] = schema or {"type": "string"}
    return q, None

def convert_op(doc, op, path_params):
    new = {k: v for k, v in op.items() if k not in ("parameters", "consumes", "produces", "responses", "schemes")}
    params = []
    body = None
    for p in op.get("parameters", []):
        q, b = convert_param(doc, p)
        if q:
            params.append(q)
        if b:
            body = b
    if params:
        new["parameters"] = params
    if body is not None:
        consumes = op.get("consumes") or CONSUMES
        new["requestBody"] = {"content": {c: {"schema": rewrite_refs(body["schema"])} for c in consumes}, "required": body.get("required", False)}
    responses = {}
    for code, r in op.get("responses", {}).items():
        rr = {"description": r.get("description", "")}
        if "schema" in r:
            produces = op.get("produces") or ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
            rr["content"] = {c: {"schema": rewrite_refs(r["schema"])} for c in produces}
        responses[code] = rr
    new["responses"] = responses
    return new

def main():
    doc = json.load(open(SWAGGER))
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    index = []
    for group, version in served_group_versions():
        prefix = "/api/v1/" if group == "" else f"/apis/{group}/{version}/"
        key = "api/v1" if group == "" else f"apis/{group}/{version}"
        paths = {}
        for path, item in doc["paths"].items():
            if not path.startswith(prefix) and path != prefix:
                continue
            new_item = {}
            path_params = []
            for p in item.get("parameters", []):
                q, _ = convert_param(doc, p)
                if q:
                    path_params.append(q)
            for method, op in item.items():
                if method == "parameters":
                    continue
                merged = dict(op)
                merged["parameters"] = item.get("parameters", []) + op.get("parameters", [])
                new_item[method] = convert_op(doc, merged, path_params)
            paths[path] = new_item
        refs = set()
        collect_refs(paths, refs)
        # Paths were rewritten already; collect from the original too.
        for path in paths:
            collect_refs(doc["paths"][path], refs)
        schemas = {}
        todo = list(refs)
        while todo:
            name = todo.pop()
            if name in schemas or name not in doc["definitions"]:
                continue
            d = doc["definitions"][name]
            schemas[name] = rewrite_refs(d)
            more = set()
            collect_refs(d, more)
            todo.extend(more - set(schemas))
        out = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": paths,
            "components": {"schemas": dict(sorted(schemas.items()))},
        }
        fname = key.replace("/", "_") + ".json"
        with open(os.path.join(OUT, fname), "w") as f:
            json.dump(out, f, separators=(",", ":"), sort_keys=False)
        index.append(f"{key} {fname}")
    rs = os.path.join(HERE, "..", "crates", "apiserver", "src", "openapi_files.rs")
    with open(rs, "w") as f:
        f.write("// @generated by hack/gen-openapi-v3.py. Do not edit.\n")
        f.write("/// (group-version path, document) of every served OpenAPI v3 document.\n")
        f.write("pub static DOCUMENTS: &[(&str, &[u8])] = &[\n")
        for line in index:
            key, fname = line.split(" ")
            f.write(f'    ("{key}", include_bytes!("../openapi/v3/{fname}")),\n')
        f.write("];\n")
    print(f"wrote {len(index)} documents to {OUT}")

main()
