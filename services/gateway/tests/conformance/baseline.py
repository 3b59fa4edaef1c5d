#!/usr/bin/env python3
"""Judges one run of the conformance suite against an expected-failures file.

    baseline.py --log RUN.log --results DIR --expected expected-failures-<era>.yml
                --requirements .../conformance/requirements/<era>.yaml [--direct]

RUN.log is the CLI's stdout (`conformance server --requirements <rev> -o DIR`), DIR its
results directory (one `server-<scenario>-<timestamp>/checks.json` per scenario).

The rules are the CLI's own `--expected-failures` rules (conformance 0.2.0-alpha.12): a check
fails when its status is FAILURE or WARNING; an entry is `<scenario>` (the whole scenario may
fail) or `<scenario>:<check-id>` (only that check may fail; every occurrence of the id counts,
the most severe wins; a listed check that is absent or skipped is tolerated). A failure not
listed is a regression; a listed entry that passes is stale. Both make the exit status 1.

Unlike the CLI, which with `--requirements` judges only the scored scenarios, this applies the
rules to every scenario the run executed, the `not_scored` ones (extensions, pending,
added-after-release) included, so that one of those that passes today cannot start failing
unnoticed. A scenario that ran but left no checks.json counts as failed.

The expected-failures file is the CLI's format (`server:` list) plus one key the CLI ignores:
`gateway_only:`, the entries of `server:` that fail only through the gateway. With --direct
(the run against the fixture itself) those are not expected to fail. Only this YAML subset is
read: top-level `key:` lines and `  - entry` items; `#` starts a comment.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

RANK = {"FAILURE": 3, "WARNING": 2, "SUCCESS": 1}


def read_expected(path: Path) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    key = None
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line.startswith((" ", "-")):
            key = line.rstrip(":").strip()
            lists.setdefault(key, [])
        elif line.strip().startswith("- ") and key is not None:
            item = line.strip()[2:].strip().strip("'\"")
            if ": " in item:
                sys.exit(f"{path}: {item!r}: no space after the colon in <scenario>:<check-id>")
            lists[key].append(item)
        else:
            sys.exit(f"{path}: cannot read line {raw!r}")
    return lists


def scenarios_run(log: str) -> list[str]:
    return re.findall(r"^=== Running scenario: (\S+) ===$", log, re.M)


def not_scored(requirements: Path) -> set[str]:
    """The server scenarios a requirement set runs without scoring (its `not_scored:` list)."""
    text = requirements.read_text().split("\nnot_scored:", 1)
    if len(text) < 2:
        return set()
    out = set()
    for entry in re.split(r"^\s*- ", text[1], flags=re.M)[1:]:
        scenario = re.search(r"scenario:\s*(\S+)", entry)
        if scenario and re.search(r"leg:\s*server\b", entry):
            out.add(scenario.group(1))
    return out


def load_checks(results: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in results.glob("server-*/checks.json"):
        name = re.sub(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$", "", f.parent.name)[len("server-") :]
        out[name] = json.loads(f.read_text())
    return out


def collapse(checks: list[dict]) -> dict[str, str]:
    """Check id -> its most severe status (INFO ignored), as the CLI does."""
    worst: dict[str, str] = {}
    for c in checks:
        status = c.get("status")
        if status == "INFO":
            continue
        if c["id"] not in worst or RANK.get(status, 0) >= RANK.get(worst[c["id"]], 0):
            worst[c["id"]] = status
    return worst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--expected", type=Path, required=True)
    p.add_argument("--requirements", type=Path, required=True, help="the CLI's requirements/<rev>.yaml")
    p.add_argument("--direct", action="store_true", help="a run against the fixture itself")
    p.add_argument("--label", default="")
    args = p.parse_args()

    log = args.log.read_text()
    lists = read_expected(args.expected)
    entries = list(lists.get("server", []))
    if args.direct:
        gateway_only = set(lists.get("gateway_only", []))
        entries = [e for e in entries if e not in gateway_only]
    whole = {e for e in entries if ":" not in e}
    per_check: dict[str, set[str]] = {}
    for e in entries:
        if ":" in e:
            scenario, check = e.split(":", 1)
            per_check.setdefault(scenario, set()).add(check)

    run = scenarios_run(log)
    unscored = not_scored(args.requirements)
    checks = load_checks(args.results)
    regressions: list[str] = []
    stale: list[str] = []
    expected: list[str] = []
    passed = {"scored": 0, "not scored": 0}
    total = {"scored": 0, "not scored": 0}
    for scenario in run:
        kind = "not scored" if scenario in unscored else "scored"
        total[kind] += 1
        worst = collapse(checks.get(scenario, []))
        failing = sorted(i for i, s in worst.items() if s in ("FAILURE", "WARNING"))
        if scenario not in checks:
            failing = ["(no checks.json: the scenario did not finish)"]
        if not failing:
            passed[kind] += 1
        if scenario in whole:
            (expected if failing else stale).append(scenario)
            continue
        allowed = per_check.get(scenario, set())
        for check in failing:
            (expected if check in allowed else regressions).append(f"{scenario}:{check}")
        for check in sorted(allowed):
            if worst.get(check) == "SUCCESS":
                stale.append(f"{scenario}:{check}")
    for e in entries:
        if e.split(":", 1)[0] not in run:
            print(f"  note: {e} is listed but its scenario did not run")

    label = args.label or args.results.name
    print(
        f"{label}: scored {passed['scored']}/{total['scored']} scenarios pass, "
        f"not scored {passed['not scored']}/{total['not scored']}; "
        f"{len(expected)} expected failure(s), {len(regressions)} regression(s), {len(stale)} stale entr(y/ies)"
    )
    for r in regressions:
        print(f"  REGRESSION (fails, not in {args.expected.name}): {r}")
    for s in stale:
        print(f"  STALE (passes now; remove it from {args.expected.name}): {s}")
    return 1 if regressions or stale else 0


if __name__ == "__main__":
    sys.exit(main())
