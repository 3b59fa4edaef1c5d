#!/usr/bin/env bash
# Checks that docs/runbook.md and the monitoring module's alarms agree:
#   - every alarm key in terraform/modules/monitoring (the keys of `alarm_definitions` in a
#     `locals` block) has a runbook entry `## <key>` (its anchor is #<key>, the link every
#     alarm description ends with);
#   - every runbook alarm entry names an existing alarm key;
#   - every entry has its four parts, as bold labels at the start of a line: **Meaning**,
#     **Impact**, **Diagnosis**, **Mitigation**.
# It fails (exit 1) naming each offending key.
#
# Usage: scripts/check-runbook.sh [RUNBOOK [MODULE_DIR]]
#   (defaults: docs/runbook.md and terraform/modules/monitoring; other paths are for testing.)
#
# How it parses (python3, standard library only):
#   - Terraform: a small lexer over every *.tf file of the module tracks brace depth while
#     skipping comments (#, //, /* */), heredocs (<<EOF / <<-EOF) and strings, including
#     ${…} interpolations that contain quotes and braces. The keys are the entries at depth 1
#     of the object that follows `alarm_definitions =`: a quoted or bare name, then `=`.
#   - Markdown: lines inside ``` fences are ignored. An alarm entry is a level-2 heading whose
#     whole text is a key-shaped slug (lower-case letters, digits, single hyphens), e.g.
#     `## gateway-snapshot-stale`; other level-2 headings ("## Before you start", "## Operator
#     questions") contain spaces or capitals and are prose. An entry runs to the next # or ##
#     heading.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

runbook=${1:-docs/runbook.md}
module=${2:-terraform/modules/monitoring}
[[ -f $runbook ]] || die "no runbook at $runbook"
[[ -d $module ]] || die "no module directory at $module"
command -v python3 >/dev/null || die "python3 is needed to parse the module and the runbook"

python3 - "$runbook" "$module" <<'PY'
import pathlib
import re
import sys

runbook_path, module_dir = sys.argv[1], pathlib.Path(sys.argv[2])
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
PARTS = ("Meaning", "Impact", "Diagnosis", "Mitigation")


def line_depths(text):
    """Brace depth at the start of each line, outside strings, comments and heredocs."""
    depths, depth, i, n = [0], 0, 0, len(text)
    stack = []  # "str" (inside "…") or "interp" (inside ${…} within a string)
    heredoc = None
    at_line_start = True

    def newline():
        depths.append(depth)

    while i < n:
        c = text[i]
        if heredoc is not None:
            end = text.find("\n", i)
            line = text[i:] if end < 0 else text[i:end]
            if line.strip() == heredoc:
                heredoc = None
            if end < 0:
                break
            i = end + 1
            newline()
            continue
        mode = stack[-1] if stack else "code"
        if mode == "str":
            if c == "\\":
                i += 2
                continue
            if c == "$" and text.startswith("${", i):
                stack.append("interp")
                i += 2
                continue
            if c == '"':
                stack.pop()
            elif c == "\n":
                newline()
            i += 1
            continue
        # code or interpolation
        if c == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            chunk = text[i : n if end < 0 else end + 2]
            for _ in range(chunk.count("\n")):
                newline()
            i = n if end < 0 else end + 2
            continue
        m = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_]*)\n").match(text, i)
        if m and mode == "code":
            heredoc = m.group(1)
            i = m.end()
            newline()
            continue
        if c == '"':
            stack.append("str")
        elif c == "{":
            if mode in ("interp", "interp-brace"):
                stack.append("interp-brace")
            else:
                depth += 1
        elif c == "}":
            if mode in ("interp", "interp-brace"):
                stack.pop()
            else:
                depth -= 1
        elif c == "\n":
            newline()
        i += 1
    return depths


def alarm_keys():
    keys, found_in = [], []
    for tf in sorted(module_dir.glob("*.tf")):
        text = tf.read_text()
        lines = text.split("\n")
        depths = line_depths(text)
        for start, line in enumerate(lines):
            if not re.match(r"^\s*alarm_definitions\s*=\s*\{\s*$", line):
                continue
            found_in.append(tf.name)
            base = depths[start]
            for j in range(start + 1, len(lines)):
                if depths[j] <= base:
                    break
                if depths[j] == base + 1:
                    m = re.match(r'^\s*"?([A-Za-z0-9_-]+)"?\s*=(?!=)', lines[j])
                    if m:
                        keys.append((m.group(1), f"{tf.name}:{j + 1}"))
    if not found_in:
        sys.exit(f"ERROR: no `alarm_definitions = {{` found in {module_dir}/*.tf (renamed? update scripts/check-runbook.sh)")
    if not keys:
        sys.exit(f"ERROR: alarm_definitions in {', '.join(found_in)} has no keys this script can read")
    return keys


def runbook_entries():
    entries, current, fenced = {}, None, False
    for number, line in enumerate(pathlib.Path(runbook_path).read_text().split("\n"), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if re.match(r"^#{1,2} ", line):
            current = None
            title = line[3:].strip() if line.startswith("## ") else ""
            if line.startswith("## ") and SLUG.match(title):
                current = title
                entries.setdefault(title, []).append({"line": number, "parts": set()})
            continue
        if current is not None:
            m = re.match(r"^\*\*(\w+)", line)
            if m and m.group(1) in PARTS:
                entries[current][-1]["parts"].add(m.group(1))
    return entries


problems = []
keys = alarm_keys()
seen = {}
for key, where in keys:
    if key in seen:
        problems.append(f"alarm `{key}` is defined twice ({seen[key]} and {where})")
    seen[key] = where
    if not SLUG.match(key):
        problems.append(f"alarm `{key}` ({where}) is not a lower-case hyphenated slug, so it cannot be a runbook heading/anchor")
entries = runbook_entries()
for key, where in seen.items():
    if key not in entries:
        problems.append(f"alarm `{key}` ({where}) has no runbook entry: add `## {key}` to {runbook_path}")
for key, occurrences in entries.items():
    lines = ", ".join(str(o["line"]) for o in occurrences)
    if key not in seen:
        problems.append(f"runbook entry `## {key}` ({runbook_path}:{lines}) names no alarm in {module_dir} (alarm_definitions)")
    if len(occurrences) > 1:
        problems.append(f"runbook entry `## {key}` appears {len(occurrences)} times ({runbook_path}:{lines}); anchors must be unique")
    for o in occurrences:
        missing = [p for p in PARTS if p not in o["parts"]]
        if missing:
            problems.append(f"runbook entry `## {key}` ({runbook_path}:{o['line']}) lacks {', '.join('**' + p + '**' for p in missing)}")

if problems:
    for p in problems:
        print(f"check-runbook: {p}", file=sys.stderr)
    sys.exit(1)
print(f"{len(seen)} alarm keys, {len(entries)} runbook entries, each with {', '.join(PARTS)}")
PY
log "runbook and alarms agree"
