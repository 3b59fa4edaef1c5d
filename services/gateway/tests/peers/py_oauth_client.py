#!/usr/bin/env python3
"""An MCP client that signs in with nothing but the URL: the official Python SDK's OAuth client
provider (`mcp.client.auth.OAuthClientProvider`, PyPI `mcp` 2.x), as Claude Code and VS Code do
it: 401 -> protected resource metadata -> authorization server metadata -> dynamic client
registration -> authorization code + PKCE in a browser -> token -> the MCP session. Run it with
the venv from scripts/deps/mcp-peers.sh:

    $MCPGW_TEST_PY_PEERS/python py_oauth_client.py URL --browser 'CMD' [--call TOOL --args JSON]

The browser step runs CMD with the authorization URL appended (the gateway tests pass
`node tests/browser/oauth_sign_in.mjs` with a user and password: headless Chromium signs in on
the auth-server's page and allows the client); the redirect comes back to a listener on a
loopback port this script opens. Prints ONE JSON object on stdout:

    {"client_id": "dcr.…", "tools": ["echo", …], "call": {"tool": …, "result": {…}},
     "browser": {…what CMD printed…}}

With --state FILE the registered client is read from FILE if it is there and written to it
after the run (tokens are not kept): a second run signs in again as the same client.

With --again N --every S the tool is called N more times, S seconds apart, in the same
session: with a short access-token lifetime the SDK refreshes in between. The output then also
has "calls" (each result's isError), "tokens" (how many token responses the SDK stored: 1 + the
refreshes) and "refresh_tokens" (how many different refresh tokens it was given).

or {"error": "..."} with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from py_client import report  # beside this file: one way to report a run


class Memory:
    """Tokens and the registered client, for this run only."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None
        self.stored: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.stored.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Callback:
    """A one-shot listener on 127.0.0.1 for the authorization response."""

    def __init__(self) -> None:
        self.params: dict[str, str] = {}
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                url = urlparse(self.path)
                # Only the first request to the redirect path (a browser also asks for
                # /favicon.ico afterwards).
                if url.path != "/callback" or outer.arrived.is_set():
                    self.send_response(404)
                    self.end_headers()
                    return
                outer.params = {k: v[0] for k, v in parse_qs(url.query).items()}
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write(b"Signed in; you may close this window.")
                outer.arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    callback = Callback()
    storage = Memory()
    if args.state and os.path.exists(args.state):
        with open(args.state) as f:
            storage.client = OAuthClientInformationFull.model_validate_json(f.read())
    out: dict[str, Any] = {}

    async def open_browser(url: str) -> None:
        argv = shlex.split(args.browser) + [url]
        done = await anyio.to_thread.run_sync(
            lambda: subprocess.run(argv, capture_output=True, text=True, timeout=60)
        )
        try:
            out["browser"] = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            out["browser"] = {"stdout": done.stdout, "stderr": done.stderr[-2000:]}
        if done.returncode != 0:
            raise RuntimeError(f"the browser step failed: {out['browser']}")

    async def wait_for_code() -> AuthorizationCodeResult:
        arrived = await anyio.to_thread.run_sync(lambda: callback.arrived.wait(30))
        if not arrived:
            raise RuntimeError("the browser never reached the redirect URI")
        p = callback.params
        if "code" not in p:
            raise RuntimeError(f"the authorization response carries no code: {p}")
        return AuthorizationCodeResult(code=p["code"], state=p.get("state"), iss=p.get("iss"))

    auth = OAuthClientProvider(
        server_url=args.url,
        client_metadata=OAuthClientMetadata(
            client_name="mcpgw test: Python SDK OAuth client",
            redirect_uris=[callback.uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=open_browser,
        callback_handler=wait_for_code,
    )
    http = create_mcp_http_client(auth=auth)

    async def trace(request: Any) -> None:
        # Every request on stderr: a failure then says which step it was.
        print(f"-> {request.method} {request.url}", file=sys.stderr, flush=True)

    http.event_hooks["request"].append(trace)
    transport = streamable_http_client(args.url, http_client=http)
    async with Client(transport, mode="legacy", cache=None) as client:
        tools = (await client.list_tools()).tools
        out["tools"] = [t.name for t in tools]
        if args.call:
            result = await client.call_tool(args.call, json.loads(args.args))
            out["call"] = {"tool": args.call, "result": dump(result)}
            calls = []
            for _ in range(args.again):
                await anyio.sleep(args.every)
                again = await client.call_tool(args.call, json.loads(args.args))
                calls.append(dump(again).get("isError"))
            if args.again:
                out["calls"] = calls
                out["tokens"] = len(storage.stored)
                out["refresh_tokens"] = len(
                    {t.refresh_token for t in storage.stored if t.refresh_token}
                )
    out["client_id"] = storage.client.client_id if storage.client else None
    if args.state and storage.client:
        with open(args.state, "w") as f:
            f.write(storage.client.model_dump_json())
    callback.server.shutdown()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("--browser", required=True)
    p.add_argument("--call")
    p.add_argument("--args", default="{}")
    p.add_argument("--state")
    p.add_argument("--again", type=int, default=0)
    p.add_argument("--every", type=float, default=0)
    p.add_argument("--timeout", type=float, default=90)
    args = p.parse_args()

    report(run, args)


if __name__ == "__main__":
    main()
