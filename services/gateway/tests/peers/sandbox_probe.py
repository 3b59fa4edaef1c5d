#!/usr/bin/env python3
"""A minimal stdio MCP server (newline-delimited JSON-RPC, standard library only, so an
unprivileged user can run it with the system's /usr/bin/python3) that reports what its sandbox
lets it do, for the gateway's stdio sandbox tests.

Tool `probe` (arguments: `read`, `write`: lists of paths) answers with one JSON text: its
uid/gid/groups and the output of `id`, its working directory, environment, open descriptors,
resource limits and process group, and for each path whether reading or writing it worked.
Tool `spawn` starts a grandchild (`sleep 600`) and answers with its pid."""
import json
import os
import resource
import subprocess
import sys


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def attempt(action):
    try:
        action()
        return "ok"
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror}"


def write(path):
    with open(path, "w") as f:
        f.write("written by a stdio server\n")


def probe(args):
    limits = {
        name: resource.getrlimit(getattr(resource, name))
        for name in ["RLIMIT_DATA", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_CPU", "RLIMIT_CORE", "RLIMIT_AS"]
    }
    try:
        id_out = subprocess.run(["id"], capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError as e:
        id_out = f"id failed: {e}"
    # The listing's own descriptor shows up too; it is named so the test can ignore it.
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            fds[fd] = "(gone: the listing itself)"
    status = open("/proc/self/status").read()
    return {
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "id": id_out,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "fds": fds,
        "limits": {k: [-1 if x == resource.RLIM_INFINITY else x for x in v] for k, v in limits.items()},
        "pid": os.getpid(), "pgid": os.getpgrp(), "sid": os.getsid(0),
        "no_new_privs": next((l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")), None),
        "read": {p: attempt(lambda p=p: open(p, "rb").read(1)) for p in args.get("read", [])},
        "write": {p: attempt(lambda p=p: write(p)) for p in args.get("write", [])},
    }


TOOLS = [
    {"name": "probe", "description": "Reports the sandbox.", "inputSchema": {"type": "object"}},
    {"name": "spawn", "description": "Starts a grandchild.", "inputSchema": {"type": "object"}},
]

for line in sys.stdin:
    if not line.strip():
        continue
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if mid is None:
        continue
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": msg["params"].get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "sandbox-probe", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        name = msg["params"]["name"]
        args = msg["params"].get("arguments") or {}
        if name == "probe":
            text = json.dumps(probe(args))
        else:
            child = subprocess.Popen(["sleep", "600"])
            text = str(child.pid)
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "unknown method"}})
