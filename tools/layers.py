#!/usr/bin/env python3
"""Checks the dependency rules of graft's source tree (README, "Layout"):

- framework/src is a folder per layer, and a file includes nothing of a higher layer:
  config < registry < io < model < data < deploy < dist < train;
- a host header (graft/host/X.h) belongs to the layer of its source unit;
- plugins (plugins/, tests/fixtures/, tests/out_of_tree/) include only the SDK (graft/X.h),
  never graft/host/ nor graft_core's private headers;
- no include cycle among graft's headers.

Prints one line per violation and exits 1 when there is any; 0 and a summary otherwise.
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
LAYERS = ["config", "registry", "io", "model", "data", "deploy", "dist", "train"]
# graft/host/<header> -> the layer of the unit that implements it
HOST = {
    "recipe": "config", "registry": "registry", "serialize": "io", "download": "io", "sha256": "io",
    "build": "model", "weights": "model", "surgery": "model", "summary": "model", "modules": "model", "watch": "model",
    "data_plan": "data", "loader": "data", "optimizer_plan": "train", "check": "train", "trainer": "train",
    "logging": "config", "runtime": "train", "script": "deploy", "deploy": "train", "png": "io",
    "report": "train", "dist": "dist",
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def files(*dirs, ext=(".cpp", ".h")):
    for d in dirs:
        for base, _, names in os.walk(os.path.join(ROOT, d)):
            for n in sorted(names):
                if n.endswith(ext):
                    yield os.path.relpath(os.path.join(base, n), ROOT)


def includes(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return INCLUDE.findall(f.read())


def resolve(path, inc):
    """The repository path of a graft include, or None for a system/LibTorch one."""
    here = os.path.dirname(path)
    for cand in (os.path.join("framework/include", inc), os.path.join("framework/src", inc), os.path.join(here, inc)):
        if os.path.isfile(os.path.join(ROOT, cand)):
            return os.path.normpath(cand)
    return None


def layer_of(path):
    if path.startswith("framework/include/graft/host/"):
        return HOST.get(os.path.splitext(os.path.basename(path))[0])
    if path.startswith("framework/include/graft/"):
        return "sdk"
    if path.startswith("framework/src/"):
        parts = path.split("/")
        return parts[2] if len(parts) > 3 else "src"
    return None


def rank(layer):
    return -1 if layer == "sdk" else LAYERS.index(layer) if layer in LAYERS else len(LAYERS)


def main():
    errors = []
    graph = {}
    for path in files("framework"):
        deps = [d for d in (resolve(path, i) for i in includes(path)) if d]
        graph[path] = deps
        mine = layer_of(path)
        if mine is None:
            continue
        if path.startswith("framework/include/graft/host/") and mine is None:
            errors.append(f"{path}: a host header of no known layer (add it to tools/layers.py)")
        if path.startswith("framework/src/") and mine not in LAYERS and path.endswith(".cpp"):
            errors.append(f"{path}: graft_core source outside the layer folders ({', '.join(LAYERS)})")
        for d in deps:
            theirs = layer_of(d)
            if theirs is None:
                continue
            if mine == "sdk" and theirs != "sdk":
                errors.append(f"{path}: the SDK includes {d} ({theirs})")
            elif rank(theirs) > rank(mine):
                errors.append(f"{path} ({mine}) includes {d} ({theirs}), a higher layer")
    for path in files("plugins", "tests/fixtures", "tests/out_of_tree"):
        for inc in includes(path):
            if inc.startswith("graft/host/"):
                errors.append(f"{path}: a plugin includes the host header {inc}")
            d = resolve(path, inc)
            if d and d.startswith("framework/src/"):
                errors.append(f"{path}: a plugin includes graft_core's private {inc}")

    # cycles: depth-first search over graft's own headers and sources
    state = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for d in graph.get(node, []):
            if state.get(d) == 1:
                errors.append("include cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])

    for e in errors:
        print(e)
    if errors:
        return 1
    print(f"layers: {len(graph)} files of framework/ checked, plugins include only the SDK, no include cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
