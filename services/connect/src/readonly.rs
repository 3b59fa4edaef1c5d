//! The read-only mode (the default; `--allow-write` turns it off): the client sees and may call
//! only tools that declare `annotations.readOnlyHint: true`.
//!
//! Rules:
//! - `tools/list` results lose every other tool (but the aggregated endpoint's `call_tool`,
//!   judged per call, see below); so do the tool lists inside `discover_tools`
//!   results of the aggregated endpoint (`{"tools": [...]}` as the text of the first content);
//! - a `tools/call` is forwarded only for a tool seen read-only in a list; an unseen tool makes
//!   the bridge list the tools itself first (a client may call without listing). On the
//!   aggregated endpoint `call_tool` is judged by the tool it names (`arguments.name`), seen in
//!   `discover_tools` results or the plain aggregation's `tools/list` (unseen: the bridge asks
//!   `discover_tools` for it by name first);
//! - a refused call is answered locally with [`REFUSED`]: the gateway never sees it.
//!   The hint is the server's claim, not a guarantee: this narrows what an agent is offered; the
//!   gateway's policy (write protection) stays what enforces.

use std::collections::HashSet;

use serde_json::{Value, json};

/// The JSON-RPC error code of a call refused in read-only mode.
pub const REFUSED: i64 = -32001;

/// Tools seen so far, by whether they are read-only.
#[derive(Debug, Default)]
pub struct Filter {
    /// The aggregated endpoint: `call_tool` stays listed, as it is judged per tool it runs.
    aggregated: bool,
    read_only: HashSet<String>,
    other: HashSet<String>,
}

/// What to do with a `tools/call`.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    Refuse(String),
    /// Not seen in a list yet: list, then ask again.
    Unknown,
}

impl Filter {
    /// The filter of a per-server URL, or of the aggregated endpoint (`aggregated`).
    pub fn new(aggregated: bool) -> Self {
        Self {
            aggregated,
            ..Self::default()
        }
    }

    /// Keeps only read-only tools of a `tools/list` result, learning every tool's hint.
    pub fn filter_list(&mut self, result: &mut Value) {
        let aggregated = self.aggregated;
        if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
            tools.retain(|tool| {
                self.learn(tool)
                    || (aggregated && tool.get("name") == Some(&Value::from("call_tool")))
            });
        }
    }

    /// The same for a `discover_tools` result (the tools are JSON in the text of its content).
    pub fn filter_discovered(&mut self, result: &mut Value) {
        let Some(text) = result.pointer_mut("/content/0/text") else {
            return;
        };
        let Some(mut inner) = text
            .as_str()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
        else {
            return;
        };
        self.filter_list(&mut inner);
        *text = Value::String(inner.to_string());
    }

    /// Whether a call of `name` with `arguments` may go on (on the aggregated endpoint,
    /// `call_tool` is judged by the tool it names).
    pub fn verdict(&self, name: &str, arguments: &Value) -> Verdict {
        let aggregated = self.aggregated;
        let target = match (aggregated, name) {
            (true, "call_tool") => match arguments.get("name").and_then(Value::as_str) {
                Some(inner) => inner,
                None => return Verdict::Refuse(refusal("call_tool without a tool name")),
            },
            _ => name,
        };
        if self.read_only.contains(target) {
            Verdict::Forward
        } else if self.other.contains(target) {
            Verdict::Refuse(refusal(&format!("{target} is not marked read-only")))
        } else {
            Verdict::Unknown
        }
    }

    /// An unseen tool after listing: refused.
    pub fn unknown(name: &str) -> String {
        refusal(&format!("{name} is not among the read-only tools listed"))
    }

    fn learn(&mut self, tool: &Value) -> bool {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return false;
        };
        let read_only = tool.pointer("/annotations/readOnlyHint") == Some(&Value::Bool(true));
        if read_only {
            self.other.remove(name);
            self.read_only.insert(name.to_owned());
        } else {
            self.read_only.remove(name);
            self.other.insert(name.to_owned());
        }
        read_only
    }
}

fn refusal(why: &str) -> String {
    format!(
        "mcpgw-connect is in read-only mode: {why}; only tools with readOnlyHint run \
         (start mcpgw-connect with --allow-write to allow the others)"
    )
}

/// The JSON-RPC error answering request `id` with `message`.
pub fn error_response(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Value {
        json!({"tools": [
            {"name": "echo", "annotations": {"readOnlyHint": true}},
            {"name": "write_note"},
            {"name": "sneaky", "annotations": {"readOnlyHint": "true"}}
        ]})
    }

    #[test]
    fn a_list_keeps_only_tools_that_declare_read_only() {
        let mut f = Filter::new(false);
        let mut result = list();
        f.filter_list(&mut result);
        assert_eq!(
            result["tools"],
            json!([{"name": "echo", "annotations": {"readOnlyHint": true}}])
        );
        assert_eq!(f.verdict("echo", &json!({})), Verdict::Forward);
        assert!(matches!(
            f.verdict("write_note", &json!({})),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            f.verdict("sneaky", &json!({})),
            Verdict::Refuse(_)
        ));
        assert_eq!(f.verdict("never_listed", &json!({})), Verdict::Unknown);
    }

    #[test]
    fn call_tool_on_the_aggregated_endpoint_is_judged_by_the_tool_it_names() {
        let mut f = Filter::new(true);
        let mut listed = json!({"tools": [{"name": "discover_tools",
            "annotations": {"readOnlyHint": true}}, {"name": "call_tool"}]});
        f.filter_list(&mut listed);
        assert_eq!(listed["tools"].as_array().unwrap().len(), 2, "{listed}");
        let mut result = json!({"content": [{"type": "text", "text": json!({"tools": [
            {"name": "weather__echo", "annotations": {"readOnlyHint": true}},
            {"name": "weather__write_note"}
        ]}).to_string()}], "isError": false});
        f.filter_discovered(&mut result);
        let inner: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(inner["tools"].as_array().unwrap().len(), 1);
        let call = |name: &str| f.verdict("call_tool", &json!({"name": name}));
        assert_eq!(call("weather__echo"), Verdict::Forward);
        assert!(matches!(call("weather__write_note"), Verdict::Refuse(_)));
        assert_eq!(call("weather__unseen"), Verdict::Unknown);
    }
}
