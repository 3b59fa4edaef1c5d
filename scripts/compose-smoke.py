#!/usr/bin/env python3
"""MCP calls through the containerised gateway, from the host (scripts/compose-test.sh).

Usage: compose-smoke.py GATEWAY_URL KEYCLOAK_URL M2M_SECRET

With a client-credentials token of Keycloak's `mcpgw-m2m` (the client mcpgw-setup created),
over Streamable HTTP:
  - /demo/mcp: initialize, tools/list (the registry's built-in demo: echo, add, current_time),
    tools/call add;
  - /mcp (the aggregated endpoint): initialize, tools/list (discover_tools, call_tool),
    tools/call discover_tools, then call_tool demo__echo.
Standard library only. Exits 1 naming the first call that went wrong.
"""

import json
import sys
import urllib.parse
import urllib.request

gateway, keycloak, secret = sys.argv[1:4]


def fail(msg):
    print(f"ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def token():
    body = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": "mcpgw-m2m", "client_secret": secret}
    ).encode()
    url = f"{keycloak}/realms/mcpgw/protocol/openid-connect/token"
    with urllib.request.urlopen(urllib.request.Request(url, body), timeout=30) as r:
        return json.load(r)["access_token"]


class Session:
    def __init__(self, url, bearer):
        self.url, self.bearer, self.session, self.next_id = url, bearer, None, 1

    def post(self, message):
        headers = {
            "authorization": f"Bearer {self.bearer}",
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2025-06-18",
        }
        if self.session:
            headers["mcp-session-id"] = self.session
        req = urllib.request.Request(self.url, json.dumps(message).encode(), headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                self.session = r.headers.get("mcp-session-id") or self.session
                text = r.read().decode()
                kind = r.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            fail(f"{self.url} {message.get('method')}: HTTP {e.code}: {e.read().decode()[:500]}")
        if "id" not in message:
            return None
        if kind.startswith("text/event-stream"):
            # The answer is the data of the event that carries our id.
            for line in text.splitlines():
                if line.startswith("data:") and line[5:].strip():
                    event = json.loads(line[5:])
                    if event.get("id") == message["id"]:
                        return event
            fail(f"{self.url} {message['method']}: no answer in the event stream: {text[:500]}")
        return json.loads(text)

    def call(self, method, params=None):
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        self.next_id += 1
        reply = self.post(message)
        if "error" in reply:
            fail(f"{self.url} {method}: {reply['error']}")
        return reply["result"]

    def open(self):
        info = self.call(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "mcpgw-compose-test", "version": "1"},
            },
        )
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return info


def text_of(result):
    return " ".join(c.get("text", "") for c in result.get("content", []))


bearer = token()

demo = Session(f"{gateway}/demo/mcp", bearer)
demo.open()
names = sorted(t["name"] for t in demo.call("tools/list")["tools"])
if names != ["add", "current_time", "echo"]:
    fail(f"/demo/mcp tools/list: {names}")
added = demo.call("tools/call", {"name": "add", "arguments": {"a": 2, "b": 40}})
if "42" not in text_of(added):
    fail(f"/demo/mcp tools/call add: {added}")
print(f"==> /demo/mcp: tools/list {names}; tools/call add(2, 40) = {text_of(added)}", file=sys.stderr)

agg = Session(f"{gateway}/mcp", bearer)
agg.open()
names = sorted(t["name"] for t in agg.call("tools/list")["tools"])
if "call_tool" not in names or "discover_tools" not in names:
    fail(f"/mcp tools/list: {names}")
found = agg.call("tools/call", {"name": "discover_tools", "arguments": {"query": "echo"}})
if "demo__echo" not in json.dumps(found):
    fail(f"/mcp discover_tools: the demo's echo is not among {found}")
echoed = agg.call(
    "tools/call",
    {
        "name": "call_tool",
        "arguments": {"name": "demo__echo", "arguments": {"text": "through the stack"}},
    },
)
if "through the stack" not in text_of(echoed) or echoed.get("isError"):
    fail(f"/mcp call_tool demo echo: {echoed}")
print(f"==> /mcp: tools/list {names}; call_tool demo/echo = {text_of(echoed)!r}", file=sys.stderr)
