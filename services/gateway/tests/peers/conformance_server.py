#!/usr/bin/env python3
"""Our own fixture for the official MCP conformance suite's *server* scenarios
(`@modelcontextprotocol/conformance server --url ...`), written against the scenario texts of
the pinned suite (0.2.0-alpha.12, see docs/conformance.md) on the official Python SDK (PyPI
`mcp` 2.x, MCPServer). It plays the part of the suite's own everything-server, which is not
published; none of its code is used here. Run it with the venv from scripts/deps/mcp-peers.sh:

    $MCPGW_TEST_PY_PEERS/python conformance_server.py [--port P]

It binds 127.0.0.1 only (port from --port, else $PORT, else 0) and, once it accepts
connections, prints exactly one line on stdout:

    READY http://127.0.0.1:<port>/mcp

One endpoint serves both protocol eras, as py_server.py does: the initialize handshake
(2025-11-25 and older, sessions with Mcp-Session-Id, SSE responses, an event store so a
stream can be closed and resumed) and 2026-07-28 (server/discover, per-request _meta,
InputRequiredResult instead of server-to-client requests, subscriptions/listen). The SDK's
DNS rebinding protection accepts only Host 127.0.0.1:*, localhost:* or [::1]:*.

What the scenarios ask for (names are fixed by the suite):
  tools      test_simple_text, test_image_content, test_audio_content, test_embedded_resource,
             test_multiple_content_types, test_error_handling, test_tool_with_progress,
             test_tool_with_logging, test_sampling, test_elicitation,
             test_elicitation_sep1034_defaults, test_elicitation_sep1330_enums,
             json_schema_2020_12_tool, test_custom_header (x-mcp-header, SEP-2243),
             test_reconnection (handshake era);
             test_missing_capability, test_streaming_elicitation, test_logging_tool,
             test_trigger_tool_change, test_trigger_prompt_change and the
             test_input_required_result_* family (2026-07-28 MRTR)
  prompts    test_simple_prompt, test_prompt_with_arguments, test_prompt_with_embedded_resource,
             test_prompt_with_image, test_input_required_result_prompt
  resources  test://static-text, test://static-binary, test://watched-resource,
             template test://template/{id}/data; resources/subscribe and /unsubscribe
             (handshake era)
  other      completion/complete, logging/setLevel (handshake era), ping
"""

from __future__ import annotations

import argparse
import base64
import itertools
import os
import sys
import warnings
from typing import Annotated, Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Message
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import (
    AudioContent,
    CallToolResult,
    Completion,
    EmbeddedResource,
    ImageContent,
    InputRequiredResult,
    TextContent,
    TextResourceContents,
)
from pydantic import BaseModel, Field

# Logging, sampling, elicitation and roots are deprecated in 2026-07-28 (SEP-2577); the
# handshake-era scenarios use them on purpose.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

HOST = "127.0.0.1"
# A 1x1 red PNG and a 1-sample 8 kHz mono WAV.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
        "0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
    )
).decode()
WAV = base64.b64encode(
    b"RIFF" + (38).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    + (16000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    + b"data" + (2).to_bytes(4, "little") + b"\x00\x00"
).decode()


class MemoryEventStore(EventStore):
    """Keeps every SSE event so a client can resume a closed stream with Last-Event-ID."""

    def __init__(self) -> None:
        self._events: list[tuple[str, str, types.JSONRPCMessage | None]] = []
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: str, message: types.JSONRPCMessage | None) -> str:
        event_id = str(next(self._ids))
        self._events.append((event_id, stream_id, message))
        if len(self._events) > 10_000:
            del self._events[:1_000]
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        index = next((i for i, (eid, _, _) in enumerate(self._events) if eid == last_event_id), None)
        if index is None:
            return None
        stream_id = self._events[index][1]
        for eid, sid, message in self._events[index + 1 :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, eid))
        return stream_id


server = MCPServer("mcpgw-conformance-fixture", version="1.0.0", log_level="WARNING")


def text(value: str) -> TextContent:
    return TextContent(type="text", text=value)


# ---- tools, both eras ---------------------------------------------------------------------


@server.tool(description="Returns one text block.")
def test_simple_text() -> CallToolResult:
    return CallToolResult(content=[text("This is a simple text response for testing.")])


@server.tool(description="Returns one image block (a 1x1 red PNG).")
def test_image_content() -> CallToolResult:
    return CallToolResult(content=[ImageContent(type="image", data=PNG, mime_type="image/png")])


@server.tool(description="Returns one audio block (a tiny WAV).")
def test_audio_content() -> CallToolResult:
    return CallToolResult(content=[AudioContent(type="audio", data=WAV, mime_type="audio/wav")])


@server.tool(description="Returns one embedded text resource.")
def test_embedded_resource() -> CallToolResult:
    resource = TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
    )
    return CallToolResult(content=[EmbeddedResource(type="resource", resource=resource)])


@server.tool(description="Returns text, image and resource blocks.")
def test_multiple_content_types() -> CallToolResult:
    resource = TextResourceContents(
        uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}'
    )
    return CallToolResult(
        content=[
            text("Multiple content types test:"),
            ImageContent(type="image", data=PNG, mime_type="image/png"),
            EmbeddedResource(type="resource", resource=resource),
        ]
    )


@server.tool(description="Always fails with isError: true.")
def test_error_handling() -> CallToolResult:
    return CallToolResult(content=[text("This tool intentionally returns an error for testing")], is_error=True)


@server.tool(description="Reports progress 0, 50 and 100 of 100.")
async def test_tool_with_progress(ctx: Context) -> str:
    for step, progress in enumerate((0, 50, 100)):
        if step:
            await anyio.sleep(0.05)
        await ctx.report_progress(progress, 100, f"{progress}%")
    return "Progress test completed"


@server.tool(description="Sends three info log messages while it runs.")
async def test_tool_with_logging(ctx: Context) -> str:
    await ctx.info("Tool execution started")
    await anyio.sleep(0.05)
    await ctx.info("Tool processing data")
    await anyio.sleep(0.05)
    await ctx.info("Tool execution completed")
    return "Logging test completed"


@server.tool(description="Logs one message; 2026-07-28 clients get it only if they set _meta logLevel.")
async def test_logging_tool(ctx: Context) -> str:
    await ctx.info("test_logging_tool ran")
    return "logged"


@server.tool(description="Asks the client to sample an LLM with the prompt (handshake era).")
async def test_sampling(prompt: str, ctx: Context) -> str:
    result = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=text(prompt))],
        max_tokens=100,
        related_request_id=ctx.request_id,
    )
    content = result.content
    answer = content.text if isinstance(content, TextContent) else str(content)
    return f"LLM response: {answer}"


class UserInfo(BaseModel):
    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


@server.tool(description="Asks the client for a username and email (handshake era).")
async def test_elicitation(message: str, ctx: Context) -> str:
    result = await ctx.elicit(message, UserInfo)
    data = result.data.model_dump() if getattr(result, "data", None) is not None else None
    return f"User response: action={result.action}, content={data}"


async def elicit_raw(ctx: Context, message: str, schema: dict[str, Any]) -> types.ElicitResult:
    """elicitation/create with a hand-written requestedSchema (the SDK's helper derives it from
    a pydantic model, which cannot express every SEP-1034/SEP-1330 shape)."""
    request = types.ElicitRequest(
        params=types.ElicitRequestFormParams(message=message, requested_schema=schema),
    )
    return await ctx.session.send_request(
        request,
        types.ElicitResult,
        metadata=_related(ctx),
    )


def _related(ctx: Context) -> ServerMessageMetadata:
    return ServerMessageMetadata(related_request_id=ctx.request_id)


@server.tool(description="Elicitation whose schema has a default for every primitive type (SEP-1034).")
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Name", "default": "John Doe"},
            "age": {"type": "integer", "description": "Age", "default": 30},
            "score": {"type": "number", "description": "Score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "Status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verified", "default": True},
        },
    }
    result = await elicit_raw(ctx, "Please review your information", schema)
    return f"Elicitation completed: action={result.action}, content={result.content}"


@server.tool(description="Elicitation with the five enum schema variants (SEP-1330).")
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    schema = {
        "type": "object",
        "properties": {
            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {
                "type": "string",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ],
            },
            "legacyEnum": {
                "type": "string",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
            "titledMulti": {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"},
                    ]
                },
            },
        },
    }
    result = await elicit_raw(ctx, "Please pick your options", schema)
    return f"Elicitation completed: action={result.action}, content={result.content}"


@server.tool(description="Tool with JSON Schema 2020-12 features")
def json_schema_2020_12_tool(
    name: str | None = None,
    address: dict[str, Any] | None = None,
    contactMethod: str | None = None,  # noqa: N803 (the scenario's field name)
    phone: str | None = None,
    email: str | None = None,
) -> str:
    return f"received name={name}"


# The advertised schema is the scenario's, verbatim (the SDK derives one from the signature).
server._tool_manager.get_tool("json_schema_2020_12_tool").parameters = {  # noqa: SLF001
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@server.tool(description="Echoes a region that clients mirror into the Mcp-Param-Region header (SEP-2243).")
def test_custom_header(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    return f"region={region}"


@server.tool(description="Closes its SSE stream mid-call; the result arrives after a resume (SEP-1699).")
async def test_reconnection(ctx: Context) -> str:
    await anyio.sleep(0.1)
    await ctx.close_sse_stream()
    await anyio.sleep(0.3)
    return "Reconnection test completed"


# ---- tools, 2026-07-28 ------------------------------------------------------------------


def _capabilities(ctx: Context) -> types.ClientCapabilities:
    return ctx.client_capabilities or types.ClientCapabilities()


@server.tool(description="Needs the client's sampling capability; rejects with -32021 without it.")
async def test_missing_capability(ctx: Context) -> str:
    if _capabilities(ctx).sampling is None:
        data = types.MissingRequiredClientCapabilityErrorData(
            required_capabilities=types.ClientCapabilities(sampling=types.SamplingCapability())
        )
        raise MCPError(
            code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="This tool needs the sampling capability",
            data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
        )
    return "sampling declared"


def elicit_request(message: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "method": "elicitation/create",
        "params": {
            "mode": "form",
            "message": message,
            "requestedSchema": {"type": "object", "properties": properties, "required": required},
        },
    }


def sampling_request(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "method": "sampling/createMessage",
        "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
            "maxTokens": max_tokens,
        },
    }


ROOTS_REQUEST: dict[str, Any] = {"method": "roots/list", "params": {}}


def input_required(requests: dict[str, Any], state: str | None = None) -> InputRequiredResult:
    body: dict[str, Any] = {"inputRequests": requests}
    if state is not None:
        body["requestState"] = state
    return InputRequiredResult.model_validate(body)


def answer(ctx: Context, key: str) -> Any:
    responses = ctx.input_responses or {}
    return responses.get(key)


NAME_REQUEST = elicit_request("What is your name?", {"name": {"type": "string"}}, ["name"])


@server.tool(description="Asks for input on its response stream via InputRequiredResult (never a request).")
async def test_streaming_elicitation(ctx: Context) -> str | InputRequiredResult:
    if answer(ctx, "user_name") is None:
        return input_required({"user_name": NAME_REQUEST})
    return "thanks"


@server.tool(description="Announces a tool-list change to subscriptions/listen streams.")
async def test_trigger_tool_change(ctx: Context) -> str:
    await ctx.notify_tools_changed()
    return "tools changed"


@server.tool(description="Announces a prompt-list change to subscriptions/listen streams.")
async def test_trigger_prompt_change(ctx: Context) -> str:
    await ctx.notify_prompts_changed()
    return "prompts changed"


@server.tool(description="MRTR: one elicitation, then a greeting.")
async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
    reply = answer(ctx, "user_name")
    if not isinstance(reply, types.ElicitResult) or reply.action != "accept" or not reply.content:
        return input_required({"user_name": NAME_REQUEST})
    return f"Hello, {reply.content.get('name', 'stranger')}!"


@server.tool(description="MRTR: one sampling request.")
async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
    reply = answer(ctx, "capital_question")
    if reply is None:
        return input_required({"capital_question": sampling_request("What is the capital of France?", 100)})
    content = getattr(reply, "content", None)
    return f"The model said: {getattr(content, 'text', content)}"


@server.tool(description="MRTR: one roots/list request.")
async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
    reply = answer(ctx, "client_roots")
    if not isinstance(reply, types.ListRootsResult):
        return input_required({"client_roots": ROOTS_REQUEST})
    return "Roots: " + ", ".join(str(r.uri) for r in reply.roots)


CONFIRM_REQUEST = elicit_request("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])


@server.tool(description="MRTR with requestState (sealed by the SDK; a tampered echo is rejected).")
async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
    if ctx.request_state != "confirm-pending" or answer(ctx, "confirm") is None:
        return input_required({"confirm": CONFIRM_REQUEST}, "confirm-pending")
    return "state-ok: confirmed"


@server.tool(description="MRTR with integrity-protected requestState.")
async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
    if ctx.request_state != "tamper-check" or answer(ctx, "confirm") is None:
        return input_required({"confirm": CONFIRM_REQUEST}, "tamper-check")
    return "state-ok"


@server.tool(description="MRTR: elicitation, sampling and roots/list in one round.")
async def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
    keys = ("user_name", "greeting", "client_roots")
    if ctx.request_state != "multi" or any(answer(ctx, k) is None for k in keys):
        return input_required(
            {
                "user_name": NAME_REQUEST,
                "greeting": sampling_request("Generate a greeting", 50),
                "client_roots": ROOTS_REQUEST,
            },
            "multi",
        )
    return "all inputs received"


@server.tool(description="MRTR over three rounds, with a new requestState each round.")
async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
    if ctx.request_state == "round-1" and answer(ctx, "step1") is not None:
        return input_required(
            {"step2": elicit_request("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])},
            "round-2",
        )
    if ctx.request_state == "round-2" and answer(ctx, "step2") is not None:
        return "all rounds complete"
    return input_required(
        {"step1": elicit_request("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])},
        "round-1",
    )


@server.tool(description="MRTR that only asks for what the client declared (sampling and/or elicitation).")
async def test_input_required_result_capabilities(ctx: Context) -> str | InputRequiredResult:
    caps = _capabilities(ctx)
    if ctx.input_responses:
        return "done"
    requests: dict[str, Any] = {}
    if caps.sampling is not None:
        requests["summary"] = sampling_request("Summarize the request", 50)
    if caps.elicitation is not None:
        requests["user_name"] = NAME_REQUEST
    if not requests:
        return "no client capability to ask with"
    return input_required(requests)


# ---- prompts --------------------------------------------------------------------------------


@server.prompt(description="A simple prompt without arguments")
def test_simple_prompt() -> list[Message]:
    return [{"role": "user", "content": text("This is a simple prompt for testing.")}]  # type: ignore[list-item]


@server.prompt(description="A prompt with two required arguments")
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[Message]:
    return [{"role": "user", "content": text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")}]  # type: ignore[list-item]


@server.prompt(description="A prompt embedding a resource")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:  # noqa: N803
    resource = TextResourceContents(uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing.")
    return [
        {"role": "user", "content": EmbeddedResource(type="resource", resource=resource)},  # type: ignore[list-item]
        {"role": "user", "content": text("Please process the embedded resource above.")},  # type: ignore[list-item]
    ]


@server.prompt(description="A prompt with an image")
def test_prompt_with_image() -> list[Message]:
    return [
        {"role": "user", "content": ImageContent(type="image", data=PNG, mime_type="image/png")},  # type: ignore[list-item]
        {"role": "user", "content": text("Please analyze the image above.")},  # type: ignore[list-item]
    ]


@server.prompt(description="MRTR on prompts/get: asks for context first (2026-07-28)")
def test_input_required_result_prompt(ctx: Context) -> Any:
    reply = answer(ctx, "user_context")
    if not isinstance(reply, types.ElicitResult) or not reply.content:
        return input_required(
            {
                "user_context": elicit_request(
                    "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]
                )
            }
        )
    return [{"role": "user", "content": text(f"Prompt with context: {reply.content.get('context')}")}]


# ---- resources ------------------------------------------------------------------------------


@server.resource("test://static-text", name="static-text", description="A static text resource", mime_type="text/plain")
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource(
    "test://static-binary", name="static-binary", description="A static binary resource (PNG)", mime_type="image/png"
)
def static_binary() -> bytes:
    return base64.b64decode(PNG)


@server.resource(
    "test://watched-resource", name="watched-resource", description="A resource to subscribe to", mime_type="text/plain"
)
def watched_resource() -> str:
    return "Watched resource content."


@server.resource(
    "test://template/{id}/data",
    name="template-data",
    description="A templated resource",
    mime_type="application/json",
)
def template_data(id: str) -> str:  # noqa: A002 (the template's variable name)
    return f'{{"id":"{id}","templateTest":true,"data":"Data for ID: {id}"}}'


# ---- methods MCPServer does not wire up (handshake era only) --------------------------------

_subscriptions: set[str] = set()
_log_level: list[str] = ["info"]


async def _subscribe(ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams) -> types.EmptyResult:
    _subscriptions.add(str(params.uri))
    return types.EmptyResult()


async def _unsubscribe(ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    _subscriptions.discard(str(params.uri))
    return types.EmptyResult()


async def _set_level(ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams) -> types.EmptyResult:
    _log_level[0] = params.level
    return types.EmptyResult()


_low = server._lowlevel_server  # noqa: SLF001
_low.add_request_handler("resources/subscribe", types.SubscribeRequestParams, _subscribe)
_low.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, _unsubscribe)
_low.add_request_handler("logging/setLevel", types.SetLevelRequestParams, _set_level)


@server.completion()
async def complete(ref: Any, argument: types.CompletionArgument, context: Any) -> Completion:
    candidates = ["paris", "park", "party", "test", "testing"]
    values = [c for c in candidates if c.startswith(argument.value)] or candidates
    return Completion(values=values, total=len(values), has_more=False)


# ---- serving ----------------------------------------------------------------------------------


async def serve(port: int) -> None:
    app = server.streamable_http_app(host=HOST, event_store=MemoryEventStore(), retry_interval=100)
    config = uvicorn.Config(app, host=HOST, port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(uv.serve)
        while not uv.started:
            if uv.should_exit:  # failed to bind
                return
            await anyio.sleep(0.02)
        bound = uv.servers[0].sockets[0].getsockname()[1]
        print(f"READY http://{HOST}:{bound}/mcp", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")))
    args = p.parse_args()
    try:
        anyio.run(serve, args.port)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
