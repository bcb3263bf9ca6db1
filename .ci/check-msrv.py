#!/usr/bin/env python3
"""Check that `rust-version` in Cargo.toml is a true MSRV for the dependency graph.

Every package that `doubleratchet` needs in order to build has to compile with the
toolchain we declare, so our `rust-version` must be at least the `rust-version` declared
by each of them. This script reads the resolved graph from
`cargo metadata --format-version 1 --all-features` (so Cargo.lock's versions, with every
optional dependency switched on), walks it from `doubleratchet` along normal and build
dependency edges, and fails, listing each offender and one path to it, if any reachable
package declares a `rust_version` above ours. It always prints the maximum it found.

What counts:
  * normal dependencies, including optional ones (all features are on) and proc-macros;
  * build dependencies (build scripts must compile with our toolchain too);
  * platform-specific dependencies of every target, not only the host's (no
    --filter-platform), since the MSRV is a promise for every target;
  * NOT dev-dependencies: they only build our tests, examples and benches, which are not
    part of the MSRV promise. A package that is also reached through a normal edge still
    counts, of course.

This is a check by metadata only. The CI toolchain is newer than the MSRV and older
toolchains cannot be downloaded here, so nothing is compiled with the declared
`rust-version`: the check cannot catch our own code using a newer language or library
feature, only a dependency that declares a higher minimum than we do. Packages that
declare no `rust-version` are listed for information and not counted.

Uses only the Python 3 standard library (no jq). Exit status 0 on success, 1 on failure.
"""

import json
import os
import subprocess
import sys
from collections import deque

ROOT_NAME = "doubleratchet"


def parse_version(text):
    """'1.85' / '1.85.0' -> (1, 85, 0); a missing component counts as 0."""
    core = text.strip().split("-", 1)[0].split("+", 1)[0]
    parts = [int(p) for p in core.split(".")]
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"unexpected rust-version {text!r}")
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--all-features"],
            cwd=repo,
            check=True,
            stdout=subprocess.PIPE,
        ).stdout
    except subprocess.CalledProcessError as err:
        print(f"check-msrv: `cargo metadata` failed with status {err.returncode}", file=sys.stderr)
        return 1
    meta = json.loads(out)

    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in (meta.get("resolve") or {}).get("nodes", [])}
    if not nodes:
        print("check-msrv: `cargo metadata` returned no resolved graph", file=sys.stderr)
        return 1

    roots = [pid for pid in meta["workspace_members"] if packages[pid]["name"] == ROOT_NAME]
    if len(roots) != 1:
        print(f"check-msrv: cannot find the `{ROOT_NAME}` package in the workspace", file=sys.stderr)
        return 1
    root = roots[0]

    ours_text = packages[root].get("rust_version")
    if not ours_text:
        print(f"check-msrv: FAIL: Cargo.toml of `{ROOT_NAME}` declares no rust-version", file=sys.stderr)
        return 1
    ours = parse_version(ours_text)

    # Breadth-first walk over normal and build edges; `parent` keeps one shortest path.
    parent = {root: None}
    queue = deque([root])
    while queue:
        pid = queue.popleft()
        for dep in nodes[pid]["deps"]:
            kinds = {dk.get("kind") for dk in dep.get("dep_kinds", [])}
            # kind None is a normal dependency; "dev" edges are skipped.
            if not kinds & {None, "build"}:
                continue
            if dep["pkg"] not in parent:
                parent[dep["pkg"]] = pid
                queue.append(dep["pkg"])

    def label(pid):
        p = packages[pid]
        return f"{p['name']} {p['version']}"

    def path_to(pid):
        chain = []
        while pid is not None:
            chain.append(packages[pid]["name"])
            pid = parent[pid]
        return " -> ".join(reversed(chain))

    reached = sorted((pid for pid in parent if pid != root), key=label)
    declared = [(pid, parse_version(packages[pid]["rust_version"]))
                for pid in reached if packages[pid].get("rust_version")]
    undeclared = [pid for pid in reached if not packages[pid].get("rust_version")]

    print(f"check-msrv: {ROOT_NAME} declares rust-version = \"{ours_text}\"")
    print(f"check-msrv: {len(reached)} packages reachable through normal/build dependencies "
          f"(all features, all targets; dev-dependencies excluded)")
    if undeclared:
        print(f"check-msrv: {len(undeclared)} declare no rust-version (not counted): "
              + ", ".join(label(pid) for pid in undeclared))
    if not declared:
        print("check-msrv: no dependency declares a rust-version; nothing to check")
        return 0

    maximum = max(v for _, v in declared)
    at_max = [pid for pid, v in declared if v == maximum]
    print("check-msrv: maximum dependency rust-version: "
          + packages[at_max[0]]["rust_version"] + ", declared by "
          + ", ".join(f"{label(pid)} ({path_to(pid)})" for pid in at_max))

    too_new = sorted(((v, pid) for pid, v in declared if v > ours),
                     key=lambda item: (tuple(-x for x in item[0]), label(item[1])))
    if too_new:
        sys.stdout.flush()  # keep the report above the failure when both go to one log
        print(f"\ncheck-msrv: FAIL: these dependencies declare a rust-version above ours "
              f"({ours_text}):", file=sys.stderr)
        for _, pid in too_new:
            print(f"  {label(pid)}: rust-version {packages[pid]['rust_version']}"
                  f"   (via {path_to(pid)})", file=sys.stderr)
        print(f"check-msrv: set rust-version = \"{packages[at_max[0]]['rust_version']}\" "
              f"in Cargo.toml (or pin older dependency versions)", file=sys.stderr)
        return 1

    print(f"check-msrv: OK: no reachable dependency needs more than {ours_text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
