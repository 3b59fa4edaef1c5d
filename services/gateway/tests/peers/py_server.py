#!/usr/bin/env python3
"""A small MCP server built on the official Python SDK (PyPI `mcp` 2.x), used by the
gateway tests as a real upstream. Run it with the venv from scripts/deps/mcp-peers.sh:

    $MCPGW_TEST_PY_PEERS/python py_server.py [--port P] [--transport streamable-http|sse]
                                             [--stateless] [--json-response]

It binds 127.0.0.1 only. The port comes from --port, else $PORT, else 0 (the kernel picks
one). Once it accepts connections it prints exactly one line on stdout and flushes it:

    READY http://127.0.0.1:<port>/mcp        (or .../sse for --transport sse)

and nothing else on stdout; uvicorn/SDK logging goes to stderr (warnings only). Stop it
with SIGTERM/SIGINT (uvicorn's graceful shutdown takes about 2 s).

One endpoint serves both protocol eras: the initialize handshake (2024-11-05 .. 2025-11-25,
sessions with Mcp-Session-Id unless --stateless) and 2026-07-28 (server/discover, per-request
_meta envelope, Mcp-Method/Mcp-Name headers required). With --json-response, POSTs are
answered with plain JSON, so progress and log notifications are dropped. The SDK's DNS
rebinding protection accepts only Host 127.0.0.1:*, localhost:* or [::1]:*.

Tools:
  add(a, b)               -> a + b             annotations.readOnlyHint = true
  write_note(text)        -> "note N saved"    no annotations (so not read-only)
  progress_steps(steps=3, delay=0.05)
                          -> "done after N steps"; before returning, for each step sends a
                             notifications/message (level info) and a notifications/progress
                             (progress i of steps; progress only if the caller sent a
                             progressToken). Handshake-era sessions get the log messages
                             unasked (this server answers logging/setLevel with "Method not
                             found": MCPServer 2.x does not implement it); 2026-07-28 requests
                             get them only when they opt in (_meta logLevel).
  sleep(seconds)          -> "slept S s"; cancellable (a cancelled call is counted)
  stats()                 -> {"notes", "sleeps_started", "sleeps_completed",
                              "sleeps_cancelled"}, read-only: lets a test see that a
                             cancellation reached this server
  echo_headers()          -> the request's Authorization, MCP-Protocol-Version,
                             Mcp-Session-Id and X-* headers (read-only), to check what a
                             gateway forwards upstream
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import ToolAnnotations

# ctx.info() is the deprecated (2026-07-28, SEP-2577) logging feature, used on purpose.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

HOST = "127.0.0.1"

server = MCPServer("mcpgw-test-py-server", version="1.0.0", log_level="WARNING")
_notes: list[str] = []
_sleeps = {"started": 0, "completed": 0, "cancelled": 0}


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int | float, b: int | float) -> int | float:
    """Add two numbers."""
    return a + b


@server.tool()
def write_note(text: str) -> str:
    """Store a note in memory (a tool with side effects)."""
    _notes.append(text)
    return f"note {len(_notes)} saved"


@server.tool()
async def progress_steps(ctx: Context, steps: int = 3, delay: float = 0.05) -> str:
    """Emit a log message and a progress notification per step, then return."""
    for i in range(1, steps + 1):
        await ctx.info(f"step {i} of {steps}")
        await ctx.report_progress(i, steps, f"step {i}")
        await anyio.sleep(delay)
    return f"done after {steps} steps"


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep for the given number of seconds (cancel it to test cancellation)."""
    _sleeps["started"] += 1
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        _sleeps["cancelled"] += 1
        print(f"sleep({seconds}) cancelled", file=sys.stderr, flush=True)
        raise
    _sleeps["completed"] += 1
    return f"slept {seconds} s"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def stats() -> dict[str, int]:
    """Counters: notes stored and sleep calls started/completed/cancelled."""
    return {
        "notes": len(_notes),
        "sleeps_started": _sleeps["started"],
        "sleeps_completed": _sleeps["completed"],
        "sleeps_cancelled": _sleeps["cancelled"],
    }


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def echo_headers(ctx: Context) -> dict[str, Any]:
    """Return the HTTP request headers a gateway forwarded (auth, protocol, session, X-*)."""
    headers = ctx.headers or {}
    keep = {"authorization", "mcp-protocol-version", "mcp-session-id"}
    return {k.lower(): v for k, v in headers.items() if k.lower() in keep or k.lower().startswith("x-")}


async def serve(args: argparse.Namespace) -> None:
    if args.transport == "sse":
        app = server.sse_app(host=HOST)
        path = "/sse"
    else:
        app = server.streamable_http_app(host=HOST, stateless_http=args.stateless, json_response=args.json_response)
        path = "/mcp"
    config = uvicorn.Config(app, host=HOST, port=args.port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(uv.serve)
        while not uv.started:
            if uv.should_exit:  # failed to bind
                return
            await anyio.sleep(0.02)
        port = uv.servers[0].sockets[0].getsockname()[1]
        print(f"READY http://{HOST}:{port}{path}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")))
    p.add_argument("--transport", choices=["streamable-http", "sse"], default="streamable-http")
    p.add_argument("--stateless", action="store_true", help="stateless Streamable HTTP (no Mcp-Session-Id)")
    p.add_argument("--json-response", action="store_true", help="answer POSTs with JSON instead of SSE")
    args = p.parse_args()
    try:
        anyio.run(serve, args)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
