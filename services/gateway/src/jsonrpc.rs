//! JSON-RPC messages as the gateway sees them, and the MCP protocol era of a request.
//!
//! The gateway does not model every MCP method: it reads what it decides on (method, tool or
//! resource name, ids, protocol metadata) and passes the rest through untouched.

use std::sync::OnceLock;

use http::HeaderMap;
use serde_json::{Map, Value, json};

mod envelope;
use envelope::{Envelope, Peeked, Shape};

/// Protocol versions of the session era (`initialize`, `Mcp-Session-Id`), oldest first.
pub const LEGACY_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The newest session-era version, offered when a client asks for one we do not know.
pub const LATEST_LEGACY: &str = "2025-11-25";
/// Protocol versions of the stateless era (per-request metadata, `server/discover`).
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
pub const LATEST_MODERN: &str = "2026-07-28";

/// `_meta` key that carries the protocol version of a stateless request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// An `Mcp-*` header disagrees with the body (2026-07-28).
    pub const HEADER_MISMATCH: i64 = -32020;
    /// The protocol version is not one this gateway speaks (2026-07-28).
    pub const UNSUPPORTED_VERSION: i64 = -32022;
}

/// What one JSON-RPC message is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Request { id: Value, method: String },
    Notification { method: String },
    Response { id: Value },
}

/// One JSON-RPC message: what kind it is, and the object itself.
///
/// A single message read by [`Incoming::parse`] keeps its bytes and what the gateway decides
/// on ([`envelope`]); the object is parsed from the bytes only when asked for.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: Kind,
    body: OnceLock<Map<String, Value>>,
    /// The bytes `body` is parsed from, when it has not been yet.
    text: Option<Box<[u8]>>,
    /// `params`' members, read while parsing the envelope (`None`: read them from `body`).
    peeked: Option<Peeked>,
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.body() == other.body()
    }
}

/// What a POST carried.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "lives for one request on the stack; boxing the single message (every proxied call) would add an allocation to save a batch's few bytes"
)]
pub enum Incoming {
    Single(Message),
    Batch(Vec<Message>),
}

/// Why a body is not acceptable JSON-RPC, with the code to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: i64,
    pub message: String,
}

impl Invalid {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

pub const MAX_BATCH: usize = 100;

impl Incoming {
    pub fn parse(bytes: &[u8]) -> Result<Incoming, Invalid> {
        if let Some(envelope) = Envelope::read(bytes) {
            return Message::from_envelope(envelope, bytes).map(Incoming::Single);
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Invalid::new(
                codes::PARSE_ERROR,
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        match value {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(Invalid::new(codes::INVALID_REQUEST, "the batch is empty"));
                }
                if items.len() > MAX_BATCH {
                    return Err(Invalid::new(
                        codes::INVALID_REQUEST,
                        format!("a batch holds at most {MAX_BATCH} messages"),
                    ));
                }
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| {
                        Message::from_value(v).map_err(|e| Invalid {
                            message: format!("batch element {i}: {}", e.message),
                            ..e
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Incoming::Batch)
            }
            other => Message::from_value(other).map(Incoming::Single),
        }
    }
}

/// The members of a message that decide its kind, from either parse.
struct Fields<'a> {
    jsonrpc: Option<&'a Value>,
    id: Option<Value>,
    method: Option<&'a Value>,
    has_result_or_error: bool,
    params: Option<Shape>,
}

impl Fields<'_> {
    fn kind(self) -> Result<Kind, Invalid> {
        if self.jsonrpc.and_then(Value::as_str) != Some("2.0") {
            return Err(Invalid::new(
                codes::INVALID_REQUEST,
                "`jsonrpc` must be \"2.0\"",
            ));
        }
        if let Some(id) = &self.id
            && !(id.is_string() || id.is_i64() || id.is_u64())
        {
            return Err(Invalid::new(
                codes::INVALID_REQUEST,
                "`id` must be a string or an integer",
            ));
        }
        let kind = match (self.method, self.id) {
            (Some(Value::String(m)), Some(id)) => {
                check_method(m)?;
                Kind::Request {
                    id,
                    method: m.clone(),
                }
            }
            (Some(Value::String(m)), None) => {
                check_method(m)?;
                Kind::Notification { method: m.clone() }
            }
            (Some(_), _) => {
                return Err(Invalid::new(
                    codes::INVALID_REQUEST,
                    "`method` must be a string",
                ));
            }
            (None, Some(id)) if self.has_result_or_error => Kind::Response { id },
            (None, _) => {
                return Err(Invalid::new(
                    codes::INVALID_REQUEST,
                    "a message needs `method` (request or notification) or `result`/`error` with `id` (response)",
                ));
            }
        };
        if matches!(self.params, Some(Shape::Other)) {
            return Err(Invalid::new(
                codes::INVALID_REQUEST,
                "`params` must be an object or an array",
            ));
        }
        Ok(kind)
    }
}

impl Message {
    pub fn from_value(value: Value) -> Result<Message, Invalid> {
        let Value::Object(body) = value else {
            return Err(Invalid::new(
                codes::INVALID_REQUEST,
                "a JSON-RPC message must be an object",
            ));
        };
        let kind = Fields {
            jsonrpc: body.get("jsonrpc"),
            id: body.get("id").cloned(),
            method: body.get("method"),
            has_result_or_error: body.contains_key("result") || body.contains_key("error"),
            params: body.get("params").map(|p| match p {
                Value::Object(_) => Shape::Object,
                Value::Array(_) => Shape::Array,
                _ => Shape::Other,
            }),
        }
        .kind()?;
        Ok(Message {
            kind,
            body: OnceLock::from(body),
            text: None,
            peeked: None,
        })
    }

    /// A message from the fast path: `text` is the whole message.
    fn from_envelope(e: Envelope, text: &[u8]) -> Result<Message, Invalid> {
        let (shape, peeked) = e.params.unzip();
        let kind = Fields {
            jsonrpc: e.jsonrpc.as_ref(),
            id: e.id,
            method: e.method.as_ref(),
            has_result_or_error: e.has_result_or_error,
            params: shape,
        }
        .kind()?;
        Ok(Message {
            kind,
            body: OnceLock::new(),
            text: Some(text.into()),
            // Read from an object only; an array's members are not named.
            peeked: Some(match shape {
                Some(Shape::Object) => peeked.unwrap_or_default(),
                _ => Peeked::default(),
            }),
        })
    }

    /// The whole object (parsed now if it was not yet).
    pub fn body(&self) -> &Map<String, Value> {
        self.body.get_or_init(|| {
            // The bytes parsed as an object before, so this does not fail.
            self.text
                .as_deref()
                .and_then(|t| serde_json::from_slice(t).ok())
                .unwrap_or_default()
        })
    }

    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            Kind::Request { method, .. } | Kind::Notification { method } => Some(method),
            Kind::Response { .. } => None,
        }
    }

    pub fn id(&self) -> Option<&Value> {
        match &self.kind {
            Kind::Request { id, .. } | Kind::Response { id } => Some(id),
            Kind::Notification { .. } => None,
        }
    }

    pub fn params(&self) -> Option<&Map<String, Value>> {
        self.body().get("params").and_then(Value::as_object)
    }

    /// The name a method acts on: the tool (`tools/call`), prompt (`prompts/get`) or resource
    /// URI (`resources/read`); what `Mcp-Name` must mirror.
    pub fn target_name(&self) -> Option<&str> {
        let key = match self.method()? {
            "tools/call" | "prompts/get" => "name",
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
            _ => return None,
        };
        if let Some(p) = &self.peeked {
            return match key {
                "name" => p.name.as_deref(),
                _ => p.uri.as_deref(),
            };
        }
        self.params()?.get(key)?.as_str()
    }

    /// `params._meta[io.modelcontextprotocol/protocolVersion]`, set by stateless clients.
    pub fn meta_protocol_version(&self) -> Option<&str> {
        if let Some(p) = &self.peeked {
            return p.meta_version.as_deref();
        }
        self.params()?
            .get("_meta")?
            .get(META_PROTOCOL_VERSION)?
            .as_str()
    }

    pub fn into_value(self) -> Value {
        self.body();
        Value::Object(self.body.into_inner().unwrap_or_default())
    }
}

fn check_method(m: &str) -> Result<(), Invalid> {
    if m.is_empty() || m.len() > 128 || m.chars().any(char::is_control) {
        return Err(Invalid::new(
            codes::INVALID_REQUEST,
            "`method` must be 1 to 128 printable characters",
        ));
    }
    Ok(())
}

/// A JSON-RPC error response.
pub fn error_response(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

pub fn result_response(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// Which protocol era a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// 2025-11-25 and older: `initialize`, sessions. The version is what the client sent in
    /// `MCP-Protocol-Version` (absent before the handshake and from 2025-03-26 clients).
    Legacy { version: Option<String> },
    /// 2026-07-28 and newer: every request stands alone.
    Modern { version: String },
}

/// Why a request's headers do not fit its body (2026-07-28 header validation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProblem {
    pub code: i64,
    pub message: String,
    /// `error.data`; for `UNSUPPORTED_VERSION` the `UnsupportedProtocolVersionError` payload
    /// `{"supported": [...], "requested": "..."}`.
    pub data: Option<Value>,
}

impl HeaderProblem {
    fn unsupported(requested: &str, supported: &[&str]) -> Self {
        Self {
            code: codes::UNSUPPORTED_VERSION,
            message: format!(
                "MCP-Protocol-Version {requested:?} is not supported; supported: {}",
                supported.join(", ")
            ),
            data: Some(json!({"supported": supported, "requested": requested})),
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Chooses the era of a POST as the 2026-07-28 transport describes: a modern version in the
/// header or in the body's `_meta` means stateless; anything else (an `initialize`, a session
/// id, an older or absent version) is the session era.
pub fn era_of(headers: &HeaderMap, incoming: &Incoming) -> Result<Era, HeaderProblem> {
    let header_version = header(headers, "mcp-protocol-version").map(str::trim);
    let first = match incoming {
        Incoming::Single(m) => Some(m),
        Incoming::Batch(_) => None,
    };
    let meta_version = first.and_then(Message::meta_protocol_version);
    let is_modern = |v: &str| v >= LATEST_MODERN || MODERN_VERSIONS.contains(&v);
    let modern = header_version.is_some_and(is_modern) || meta_version.is_some_and(is_modern);
    if !modern {
        if let Some(v) = header_version
            && !LEGACY_VERSIONS.contains(&v)
        {
            return Err(HeaderProblem::unsupported(v, &supported_versions()));
        }
        // The session era does not define Mcp-Method / Mcp-Name: the gateway never forwards
        // them there (`proxy::send_http`), but one that contradicts the body is refused, not
        // silently dropped, since something between the client and us may have routed on it.
        match incoming {
            Incoming::Single(m) => check_mirrored_headers(headers, m, false)?,
            Incoming::Batch(_) => {
                if let Some(name) = MIRRORED_HEADERS.iter().find(|h| headers.contains_key(**h)) {
                    return Err(HeaderProblem {
                        code: codes::HEADER_MISMATCH,
                        message: format!(
                            "a batch cannot carry the {} header: it names one message; send the header without the batch, or the batch without it",
                            display_name(name)
                        ),
                        data: None,
                    });
                }
            }
        }
        return Ok(Era::Legacy {
            version: header_version.map(str::to_owned),
        });
    }
    let Some(message) = first else {
        return Err(HeaderProblem {
            code: codes::INVALID_REQUEST,
            message: "stateless (2026-07-28) requests cannot be batched".into(),
            data: None,
        });
    };
    let version = match (header_version, meta_version) {
        (Some(h), Some(m)) if h != m => {
            return Err(HeaderProblem {
                code: codes::HEADER_MISMATCH,
                message: format!(
                    "MCP-Protocol-Version header {h:?} differs from _meta {META_PROTOCOL_VERSION} {m:?}"
                ),
                data: None,
            });
        }
        (Some(h), _) => h,
        (None, Some(m)) => {
            return Err(HeaderProblem {
                code: codes::HEADER_MISMATCH,
                message: format!(
                    "the MCP-Protocol-Version header is required (the body says {m:?})"
                ),
                data: None,
            });
        }
        (None, None) => unreachable!("modern implies a version"),
    };
    if !MODERN_VERSIONS.contains(&version) {
        // The versions server/discover lists: a stateless client picks one of them and retries.
        return Err(HeaderProblem::unsupported(version, MODERN_VERSIONS));
    }
    check_mirrored_headers(headers, message, true)?;
    Ok(Era::Modern {
        version: version.to_owned(),
    })
}

/// The request headers that mirror the body (2026-07-28): what `check_mirrored_headers` compares.
pub const MIRRORED_HEADERS: &[&str] = &["mcp-method", "mcp-name"];

fn display_name(header: &str) -> &'static str {
    match header {
        "mcp-method" => "Mcp-Method",
        _ => "Mcp-Name",
    }
}

/// `Mcp-Method` must equal the body's method, and `Mcp-Name` the tool, prompt or resource.
/// `required` (2026-07-28): `Mcp-Method` on every request and notification, `Mcp-Name` on
/// `tools/call`, `resources/read` and `prompts/get`. Otherwise (the session era) a header may
/// be absent, but one that is present must still agree; a header on a message that has no
/// method or no name disagrees with it.
fn check_mirrored_headers(
    headers: &HeaderMap,
    message: &Message,
    required: bool,
) -> Result<(), HeaderProblem> {
    let mismatch = |message: String| HeaderProblem {
        code: codes::HEADER_MISMATCH,
        message,
        data: None,
    };
    let Some(method) = message.method() else {
        // A response the client sends back carries no method, so it has nothing to mirror.
        return match MIRRORED_HEADERS.iter().find(|h| headers.contains_key(**h)) {
            Some(h) => Err(mismatch(format!(
                "a JSON-RPC response has no method or name; send it without the {} header",
                display_name(h)
            ))),
            None => Ok(()),
        };
    };
    // Compared as bytes: a value that is not visible ASCII differs, it is not absent.
    match headers.get("mcp-method") {
        None if required => {
            return Err(mismatch(format!(
                "the Mcp-Method header is required ({method:?})"
            )));
        }
        Some(h) if h.as_bytes() != method.as_bytes() => {
            let h = String::from_utf8_lossy(h.as_bytes());
            return Err(mismatch(format!(
                "Mcp-Method header {h:?} differs from the body's method {method:?}"
            )));
        }
        _ => {}
    }
    let name = message.target_name();
    let name_required =
        required && matches!(method, "tools/call" | "resources/read" | "prompts/get");
    match (headers.get("mcp-name"), name) {
        (None, _) if name_required => {
            return Err(mismatch(format!(
                "the Mcp-Name header is required for {method}"
            )));
        }
        (None, _) => {}
        (Some(h), Some(n))
            if h.to_str().ok().and_then(decode_header_value).as_deref() == Some(n) => {}
        (Some(h), n) => {
            let h = String::from_utf8_lossy(h.as_bytes());
            return Err(mismatch(match n {
                Some(n) => format!("Mcp-Name header {h:?} differs from the body's {n:?}"),
                None => format!(
                    "Mcp-Name header {h:?} names nothing in the body ({method} has no name); send {method} without it"
                ),
            }));
        }
    }
    Ok(())
}

/// Header values that are not plain ASCII travel as `=?base64?<b64>?=`.
fn decode_header_value(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    use base64::Engine;
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(std::borrow::Cow::Owned),
        None => Some(std::borrow::Cow::Borrowed(raw)),
    }
}

pub fn supported_versions() -> Vec<&'static str> {
    LEGACY_VERSIONS
        .iter()
        .chain(MODERN_VERSIONS)
        .copied()
        .collect()
}

/// The version to answer an `initialize` with: the client's if we speak it, else our latest.
pub fn negotiate_legacy(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| LEGACY_VERSIONS.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(LATEST_LEGACY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn call(name: &str, meta_version: Option<&str>) -> Incoming {
        let mut params = json!({"name": name, "arguments": {}});
        if let Some(v) = meta_version {
            params["_meta"] = json!({META_PROTOCOL_VERSION: v});
        }
        Incoming::parse(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn parses_each_kind_and_refuses_bad_shapes_with_the_reason() {
        let m = Message::from_value(json!({"jsonrpc":"2.0","id":"a","method":"ping"})).unwrap();
        assert_eq!(m.method(), Some("ping"));
        let n = Message::from_value(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .unwrap();
        assert!(matches!(n.kind, Kind::Notification { .. }));
        let r = Message::from_value(json!({"jsonrpc":"2.0","id":3,"result":{}})).unwrap();
        assert!(matches!(r.kind, Kind::Response { .. }));
        for (bad, says) in [
            (json!({"id": 1, "method": "x"}), "jsonrpc"),
            (json!({"jsonrpc": "2.0", "id": 1.5, "method": "x"}), "`id`"),
            (json!({"jsonrpc": "2.0", "id": 1, "method": 7}), "`method`"),
            (json!({"jsonrpc": "2.0", "id": 1}), "needs `method`"),
            (
                json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": 3}),
                "`params`",
            ),
        ] {
            let e = Message::from_value(bad).unwrap_err();
            assert!(e.message.contains(says), "{}", e.message);
        }
        assert_eq!(Incoming::parse(b"{").unwrap_err().code, codes::PARSE_ERROR);
        let e = Incoming::parse(b"[]").unwrap_err();
        assert!(e.message.contains("empty"));
        let e = Incoming::parse(br#"[{"jsonrpc":"2.0","method":"a"}, 5]"#).unwrap_err();
        assert!(e.message.starts_with("batch element 1"), "{}", e.message);
    }

    #[test]
    fn the_envelope_fast_path_agrees_with_the_full_parse() {
        let samples = [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","n":[1,{"x":null}]},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
            r#" {"method":"resources/read","jsonrpc":"2.0","id":"r","params":{"uri":"file:///a"}} "#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7,"_meta":[]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["echo"]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":null}"#,
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":1}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":2,"id":1,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":""}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","jsonrpc":"1.0"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x"} trailing"#,
            r#""a string""#,
        ];
        for text in samples {
            let full = serde_json::from_str::<Value>(text)
                .map_err(|_| codes::PARSE_ERROR)
                .and_then(|v| Message::from_value(v).map_err(|e| e.code));
            let fast = match Incoming::parse(text.as_bytes()) {
                Ok(Incoming::Single(m)) => Ok(m),
                Ok(Incoming::Batch(_)) => panic!("{text}: not a batch"),
                Err(e) => Err(e.code),
            };
            match (&full, &fast) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.kind, b.kind, "{text}");
                    assert_eq!(a.target_name(), b.target_name(), "{text}");
                    assert_eq!(
                        a.meta_protocol_version(),
                        b.meta_protocol_version(),
                        "{text}"
                    );
                    assert_eq!(a.params(), b.params(), "{text}");
                    assert_eq!(a, b, "{text}");
                    assert_eq!(a.clone().into_value(), b.clone().into_value(), "{text}");
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{text}"),
                _ => panic!("{text}: full {full:?}, fast {fast:?}"),
            }
        }
        let Incoming::Single(m) = call("echo", Some("2026-07-28")) else {
            panic!("one message")
        };
        assert_eq!(m.target_name(), Some("echo"));
        assert_eq!(m.meta_protocol_version(), Some("2026-07-28"));
    }

    #[test]
    fn era_follows_the_version_in_header_or_meta() {
        let legacy = era_of(&headers(&[]), &call("t", None)).unwrap();
        assert_eq!(legacy, Era::Legacy { version: None });
        let legacy = era_of(
            &headers(&[("mcp-protocol-version", "2025-06-18")]),
            &call("t", None),
        )
        .unwrap();
        assert!(matches!(legacy, Era::Legacy { version: Some(v) } if v == "2025-06-18"));
        let modern = era_of(
            &headers(&[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "t"),
            ]),
            &call("t", Some("2026-07-28")),
        )
        .unwrap();
        assert!(matches!(modern, Era::Modern { .. }));
        let unknown = era_of(
            &headers(&[("mcp-protocol-version", "1999-01-01")]),
            &call("t", None),
        )
        .unwrap_err();
        assert_eq!(unknown.code, codes::UNSUPPORTED_VERSION);
    }

    #[test]
    fn mirrored_headers_must_match_the_body() {
        let base = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            era_of(&headers(&all), &call("weather", Some("2026-07-28")))
        };
        assert!(with(&[("mcp-name", "weather")]).is_ok());
        let e = with(&[("mcp-name", "other")]).unwrap_err();
        assert_eq!(e.code, codes::HEADER_MISMATCH);
        assert!(e.message.contains("\"other\""), "{}", e.message);
        assert_eq!(with(&[]).unwrap_err().code, codes::HEADER_MISMATCH);
        // base64-encoded names decode before the comparison
        assert!(with(&[("mcp-name", "=?base64?d2VhdGhlcg==?=")]).is_ok());
        let e = era_of(
            &headers(&[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
                ("mcp-name", "weather"),
            ]),
            &call("weather", Some("2026-07-28")),
        )
        .unwrap_err();
        assert!(e.message.contains("Mcp-Method"), "{}", e.message);
        // header and _meta versions disagree
        let e = era_of(
            &headers(&[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ]),
            &call("weather", Some("2026-09-01")),
        )
        .unwrap_err();
        assert_eq!(e.code, codes::HEADER_MISMATCH);
    }

    #[test]
    fn in_the_session_era_mirrored_headers_may_be_absent_but_never_disagree() {
        let legacy = |pairs: &[(&str, &str)], body: Value| {
            let mut all = vec![("mcp-protocol-version", "2025-11-25")];
            all.extend_from_slice(pairs);
            era_of(
                &headers(&all),
                &Incoming::parse(body.to_string().as_bytes()).unwrap(),
            )
        };
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {}}});
        assert!(legacy(&[], call.clone()).is_ok(), "not required here");
        assert!(
            legacy(
                &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
                call.clone()
            )
            .is_ok()
        );
        for (pairs, says) in [
            (&[("mcp-method", "tools/list")][..], "Mcp-Method"),
            (
                &[("mcp-name", "delete_everything")][..],
                "\"delete_everything\"",
            ),
            (
                &[("mcp-method", "tools/call"), ("mcp-name", "other")][..],
                "Mcp-Name",
            ),
        ] {
            let e = legacy(pairs, call.clone()).unwrap_err();
            assert_eq!(e.code, codes::HEADER_MISMATCH, "{pairs:?}");
            assert!(e.message.contains(says), "{}", e.message);
        }
        // A name header on a method that names nothing disagrees with it.
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let e = legacy(&[("mcp-name", "echo")], list).unwrap_err();
        assert!(e.message.contains("has no name"), "{}", e.message);
        // A response has no method to mirror.
        let response = json!({"jsonrpc": "2.0", "id": 3, "result": {}});
        assert!(legacy(&[("mcp-method", "tools/call")], response).is_err());
        // A batch cannot be described by one header.
        let batch = json!([call, {"jsonrpc": "2.0", "id": 4, "method": "ping"}]);
        let e = legacy(&[("mcp-method", "tools/call")], batch.clone()).unwrap_err();
        assert!(e.message.contains("batch"), "{}", e.message);
        assert!(legacy(&[], batch).is_ok());
    }

    #[test]
    fn a_stateless_name_header_on_a_method_without_a_name_is_refused() {
        let list = Incoming::parse(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {
                "_meta": {META_PROTOCOL_VERSION: "2026-07-28"}}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let e = era_of(
            &headers(&[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
                ("mcp-name", "admin_tool"),
            ]),
            &list,
        )
        .unwrap_err();
        assert_eq!(e.code, codes::HEADER_MISMATCH);
    }

    #[test]
    fn negotiation_keeps_known_versions() {
        assert_eq!(negotiate_legacy(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate_legacy(Some("2030-01-01")), LATEST_LEGACY);
        assert_eq!(negotiate_legacy(None), LATEST_LEGACY);
    }
}
