"""Generates the JSON schemas kubeconform validates the chart against, from the REAL Kubernetes
OpenAPI spec (api/openapi-spec/swagger.json of the k8s.io/kubernetes Go module, fetched through the
Go module proxy). One standalone, strict schema per kind the chart and the example Job render:
the kind's definition plus every definition it reaches, `additionalProperties: false` on every
object with declared properties (unknown fields are errors, as `kubectl --validate=strict`), and
IntOrString / Quantity as string-or-number (what the API server accepts), as openapi2jsonschema
does. File names follow kubeconform's template `{{.ResourceKind}}{{.KindSuffix}}.json`.

Usage: python3 generate.py <swagger.json> <out-dir> <k8s-version>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

KINDS = [
    ("", "v1", "Service"),
    ("apps", "v1", "DaemonSet"),
    ("apps", "v1", "StatefulSet"),
    ("batch", "v1", "Job"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
]
STRING_OR_NUMBER = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
}


def refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            out.add(ref.removeprefix("#/definitions/"))
        for v in node.values():
            refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: strict(v) for k, v in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def main() -> None:
    spec_file, out_dir, version = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    definitions: dict[str, Any] = json.loads(Path(spec_file).read_text())["definitions"]
    out_dir.mkdir(parents=True, exist_ok=True)
    for group, ver, kind in KINDS:
        name = next(
            n
            for n, d in definitions.items()
            if {"group": group, "version": ver, "kind": kind} in d.get("x-kubernetes-group-version-kind", [])
        )
        closure: set[str] = set()
        todo = [name]
        while todo:
            n = todo.pop()
            if n in closure:
                continue
            closure.add(n)
            found: set[str] = set()
            refs(definitions[n], found)
            todo.extend(found - closure)
        defs = {n: STRING_OR_NUMBER.get(n) or strict(definitions[n]) for n in sorted(closure)}
        schema = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "description": f"{kind} ({group + '/' if group else ''}{ver}) from Kubernetes {version} swagger.json",
            **defs[name],
            "definitions": defs,
        }
        suffix = f"-{group.split('.')[0]}-{ver}" if group else f"-{ver}"
        target = out_dir / f"{kind.lower()}{suffix}.json"
        target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"{target.name}: {name}, {len(closure)} definitions")


if __name__ == "__main__":
    main()
