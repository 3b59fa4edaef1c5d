#!/usr/bin/env python3
"""Measures the tool definitions real stdio MCP servers publish: the longest name, title,
description, schema (serialized and nesting depth) and whole definition, over every server
given, so the registry's tool limits can be set from what servers really send
(services/core/src/domain/tool.rs; the figures are in docs/MCP-GATEWAY.md).

    measure-tools.py [--json] -- CMD ARGS... [-- CMD ARGS...]...

Each command is started with a clean environment plus AWS_REGION and obviously fake AWS
credentials (the awslabs servers start offline with them), sent `initialize` and `tools/list`
(every page) over stdio, and stopped. Standard library only."""

import json
import os
import select
import subprocess
import sys
import time

START_TIMEOUT = 60.0


def depth(v):
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    return 0


def canonical(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def rpc(proc, message, deadline):
    proc.stdin.write((json.dumps(message) + "\n").encode())
    proc.stdin.flush()
    want = message.get("id")
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 1 << 20)
        if not chunk:
            raise RuntimeError("the server exited")
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if reply.get("id") == want:
                if "error" in reply:
                    raise RuntimeError(f"error: {reply['error']}")
                return reply["result"]
    raise RuntimeError("no answer in time")


def list_tools(cmd):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE0000",
        "AWS_SECRET_ACCESS_KEY": "fake/fake/fake",
        "FASTMCP_LOG_LEVEL": "ERROR",
    }
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        rpc(proc, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "measure-tools", "version": "1"}}}, deadline)
        proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        tools, cursor, n = [], None, 1
        while True:
            params = {"cursor": cursor} if cursor else {}
            result = rpc(proc, {"jsonrpc": "2.0", "id": n, "method": "tools/list", "params": params},
                         time.monotonic() + 30)
            tools += result.get("tools", [])
            cursor, n = result.get("nextCursor"), n + 1
            if not cursor:
                return tools
    finally:
        proc.kill()
        proc.wait()


def main(argv):
    as_json = "--json" in argv
    argv = [a for a in argv if a != "--json"]
    commands, current = [], None
    for a in argv:
        if a == "--":
            current = []
            commands.append(current)
        elif current is not None:
            current.append(a)
    fields = ["name", "title", "description", "input_schema_bytes", "schema_depth", "tool_bytes"]
    worst = {f: (0, "") for f in fields}
    servers, total, failed = 0, 0, []
    for cmd in commands:
        package = next((a.split("node_modules/")[1] for a in cmd if "node_modules/" in a), None)
        script = next((os.path.basename(a) for a in cmd[1:] if "-mcp-server" in a), None)
        label = "/".join(package.split("/")[:2]) if package else script or os.path.basename(cmd[0])
        try:
            tools = list_tools(cmd)
        except Exception as e:  # noqa: BLE001 - a report, not a library
            failed.append(f"{label}: {e}")
            continue
        servers += 1
        total += len(tools)
        for t in tools:
            where = f"{label}/{t.get('name', '?')}"
            title = max(len(t.get("title") or ""), len((t.get("annotations") or {}).get("title") or ""))
            schemas = [t.get("inputSchema") or {}, t.get("outputSchema") or {}]
            seen = {
                "name": len(t.get("name") or ""),
                "title": title,
                "description": len(t.get("description") or ""),
                "input_schema_bytes": len(canonical(t.get("inputSchema") or {})),
                "schema_depth": max(depth(s) for s in schemas),
                "tool_bytes": len(canonical(t).encode()),
            }
            for f, v in seen.items():
                if v > worst[f][0]:
                    worst[f] = (v, where)
    report = {"servers": servers, "tools": total, "max": {f: {"value": v, "where": w} for f, (v, w) in worst.items()},
              "failed": failed}
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{servers} servers, {total} tools")
        for f, (v, w) in worst.items():
            print(f"  {f:20} {v:8}  {w}")
        for f in failed:
            print(f"  failed: {f}")
    return 0 if servers else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
