//! The fast path of [`super::Incoming::parse`] for one message (what every proxied call is):
//! a single pass over the bytes that keeps only what the gateway decides on — `jsonrpc`, `id`,
//! `method`, whether `result`/`error` are there, the shape of `params` and, inside it, the
//! tool name (`name`), the resource (`uri`) and `_meta`'s protocol version. Everything else
//! (the tool's arguments above all) is skipped without being built; the whole object is parsed
//! only if someone asks for it ([`super::Message::params`], [`super::Message::into_value`]).
//!
//! Rules: duplicate keys behave as in `serde_json::Value` (the last one wins); anything this
//! path does not accept (not an object, not JSON, a batch) goes to the full parse, which
//! produces the answer and the error messages, so both paths agree by construction.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::META_PROTOCOL_VERSION;

/// What `params` is, as far as the checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Object,
    Array,
    Other,
}

/// The members of `params` the gateway reads (only when `params` is an object).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Peeked {
    pub name: Option<String>,
    pub uri: Option<String>,
    pub meta_version: Option<String>,
}

/// One message's envelope.
#[derive(Default)]
pub(super) struct Envelope {
    pub jsonrpc: Option<Value>,
    pub id: Option<Value>,
    pub method: Option<Value>,
    pub has_result_or_error: bool,
    pub params: Option<(Shape, Peeked)>,
}

impl Envelope {
    /// `None`: not a single JSON object (the full parse decides what it is).
    pub fn read(bytes: &[u8]) -> Option<Envelope> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
        if *first != b'{' {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }
}

impl<'de> de::Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut e = Envelope::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "jsonrpc" => e.jsonrpc = Some(map.next_value()?),
                "id" => e.id = Some(map.next_value()?),
                "method" => e.method = Some(map.next_value()?),
                "params" => e.params = Some(map.next_value::<Params>()?.0),
                "result" | "error" => {
                    map.next_value::<IgnoredAny>()?;
                    e.has_result_or_error = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(e)
    }
}

struct Params((Shape, Peeked));

impl<'de> de::Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamsVisitor).map(Params)
    }
}

struct ParamsVisitor;

impl ParamsVisitor {
    fn other<E>(self) -> Result<(Shape, Peeked), E> {
        Ok((Shape::Other, Peeked::default()))
    }
}

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = (Shape, Peeked);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut p = Peeked::default();
        let as_string = |v: Value| match v {
            Value::String(s) => Some(s),
            _ => None,
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "name" => p.name = as_string(map.next_value()?),
                "uri" => p.uri = as_string(map.next_value()?),
                "_meta" => {
                    let meta: Value = map.next_value()?;
                    p.meta_version = meta
                        .get(META_PROTOCOL_VERSION)
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((Shape::Object, p))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok((Shape::Array, Peeked::default()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        self.other()
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        self.other()
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        self.other()
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        self.other()
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        self.other()
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        self.other()
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        self.other()
    }
}
