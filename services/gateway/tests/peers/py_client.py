#!/usr/bin/env python3
"""An MCP client built on the official Python SDK (PyPI `mcp` 2.x), used by the gateway
tests as a real downstream client. Run it with the venv from scripts/deps/mcp-peers.sh:

    $MCPGW_TEST_PY_PEERS/python py_client.py URL [options]

Connects to URL (Streamable HTTP by default, or the legacy HTTP+SSE transport with
--transport sse, URL then being the .../sse endpoint; with --transport stdio, URL is a
command line, split like a shell would, whose process is spoken to over stdio), lists the
tools, optionally calls one, and prints ONE JSON object on stdout:

    {"protocol_version": "2025-11-25", "server_info": {"name": ..., "version": ...},
     "tools": ["add", ...],
     "read_only": {"add": true, "write_note": false, ...},     # annotations.readOnlyHint
     "call": {"tool": "add", "result": {CallToolResult, fields as received}},  # with --call
     "cancelled": true,                                         # with --cancel-after, if it fired
     "progress": [{"progress": 1, "total": 3, "message": "step 1"}, ...],
     "logs": [{"level": "info", "data": "step 1 of 3"}, ...],
     "after": {"tool": ..., "result": {...}},                    # with --after-call
     "set_level_error": "Method not found"}   # if logging/setLevel was refused (not fatal)

Exit status 0 on success (a tool result with isError=true is still success: look at
call.result.isError); on failure it prints {"error": "..."} on stdout and exits 1.

Options:
  --token T            send "Authorization: Bearer T"
  --header 'K: V'      an extra request header (repeatable)
  --transport http|sse|stdio
                       Streamable HTTP (default), HTTP+SSE, or stdio (URL = command)
  --mode legacy|auto|2026-07-28
                       how to negotiate: legacy = initialize handshake (default; the
                       SDK's own default is auto = probe server/discover, fall back to
                       initialize); 2026-07-28 = adopt that version with no probe
  --call TOOL          call TOOL after listing
  --args JSON          its arguments, a JSON object (default {})
  --progress           ask for progress notifications (sends a progressToken)
  --log-level LEVEL    ask for log messages at LEVEL or above (logging/setLevel on a
                       handshake session, the per-request opt-in on 2026-07-28)
  --cancel-after S     cancel the call after S seconds (the SDK sends
                       notifications/cancelled on a handshake session and closes the
                       request's stream on 2026-07-28), then wait 0.5 s
  --after-call TOOL    call TOOL (no arguments) after --call, in the same session
  --timeout S          overall deadline (default 60)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import warnings
from typing import Any

import anyio
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    headers: dict[str, str] = {}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    for h in args.header:
        k, sep, v = h.partition(":")
        if not sep:
            raise SystemExit(f"--header wants 'Name: value', got {h!r}")
        headers[k.strip()] = v.strip()
    call_args = json.loads(args.args)
    if not isinstance(call_args, dict):
        raise SystemExit("--args must be a JSON object")

    out: dict[str, Any] = {}
    progress: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append({"progress": p, "total": total, "message": message})

    async def on_log(params: Any) -> None:
        logs.append({"level": params.level, "logger": params.logger, "data": params.data})

    async with Client_for(args, headers, on_log) as client:
        out["protocol_version"] = client.protocol_version
        out["server_info"] = dump(client.server_info) if client.server_info else None
        if args.log_level and args.mode == "legacy":
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "logging is deprecated as of 2026-07-28"
                    await client.set_logging_level(args.log_level)
            except MCPError as e:  # servers need not implement logging/setLevel
                out["set_level_error"] = str(e)
        tools = (await client.list_tools()).tools
        out["tools"] = [t.name for t in tools]
        out["read_only"] = {t.name: bool(t.annotations and t.annotations.read_only_hint) for t in tools}
        if args.call:
            cb = on_progress if args.progress else None
            if args.cancel_after is not None:
                with anyio.move_on_after(args.cancel_after) as scope:
                    result = await client.call_tool(args.call, call_args, progress_callback=cb)
                out["cancelled"] = scope.cancelled_caught
                if scope.cancelled_caught:
                    await anyio.sleep(0.5)  # let notifications/cancelled reach the server
                else:
                    out["call"] = {"tool": args.call, "result": dump(result)}
            else:
                result = await client.call_tool(args.call, call_args, progress_callback=cb)
                out["call"] = {"tool": args.call, "result": dump(result)}
        if args.after_call:
            result = await client.call_tool(args.after_call, {})
            out["after"] = {"tool": args.after_call, "result": dump(result)}
    if args.progress:
        out["progress"] = progress
    if args.log_level:
        out["logs"] = logs
    return out


def Client_for(args: argparse.Namespace, headers: dict[str, str], on_log: Any) -> Client:
    if args.transport == "stdio":
        argv = shlex.split(args.url)
        transport = stdio_client(StdioServerParameters(command=argv[0], args=argv[1:]))
    elif args.transport == "sse":
        transport = sse_client(args.url, headers=headers or None)
    else:
        transport = streamable_http_client(args.url, http_client=create_mcp_http_client(headers=headers or None))
    return Client(
        transport,
        mode=args.mode,
        logging_callback=on_log,
        log_level=args.log_level if args.mode != "legacy" else None,
        cache=None,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("--token")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--transport", choices=["http", "sse", "stdio"], default="http")
    p.add_argument("--mode", default="legacy")
    p.add_argument("--call")
    p.add_argument("--args", default="{}")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--log-level")
    p.add_argument("--cancel-after", type=float)
    p.add_argument("--after-call")
    p.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()

    report(run, args)


def report(run: Any, args: argparse.Namespace) -> None:
    """Run `run(args)` within `args.timeout` seconds; print its result as one JSON line, or
    the failure as `{"error": ...}` and exit 1 (the Rust tests read either)."""

    async def bounded() -> dict[str, Any]:
        with anyio.fail_after(args.timeout):
            return await run(args)

    try:
        out = anyio.run(bounded)
    except BaseException as e:  # noqa: BLE001 - report every failure as JSON
        if isinstance(e, SystemExit) and isinstance(e.code, int):
            raise
        print(json.dumps({"error": describe(e)}))
        sys.exit(1)
    print(json.dumps(out))


def describe(e: BaseException) -> str:
    """Flatten exception groups (anyio task groups wrap transport errors) into one line."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(x) for x in e.exceptions)
    if isinstance(e, TimeoutError):
        return "timed out"
    return f"{type(e).__name__}: {e}"


if __name__ == "__main__":
    main()
