#!/usr/bin/env python3
"""A minimal stdio MCP server (newline-delimited JSON-RPC, no SDK) that exits on request, for
the gateway's supervision tests: tool `whoami` answers with this process id, tool `crash`
answers and then exits with status 3, tool `environ` answers with its environment as JSON.
It writes a line to stderr at start."""
import json
import os
import sys

print(f"crashy stdio server {os.getpid()} starting", file=sys.stderr, flush=True)


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    if not line.strip():
        continue
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if mid is None:
        continue  # notifications
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": msg["params"].get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "crashy", "version": "1"}}})
    elif method == "tools/list":
        tools = [{"name": n, "inputSchema": {"type": "object"},
                  "annotations": {"readOnlyHint": True}} for n in ("whoami", "crash", "environ")]
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": tools}})
    elif method == "tools/call":
        name = msg["params"]["name"]
        text = json.dumps(dict(os.environ)) if name == "environ" else str(os.getpid())
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "content": [{"type": "text", "text": text}], "isError": False}})
        if name == "crash":
            sys.exit(3)
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})
