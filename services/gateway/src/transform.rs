//! Changes the gateway makes to answers on their way back: lists filtered to what the caller
//! may use, tools held to their approved definitions, and tool results cut to a size an
//! agent's context can hold.

use std::collections::HashMap;
use std::sync::RwLock;

use mcpgw_core::domain::IntegrityMode;
use mcpgw_core::domain::integrity::{self, Gate};
use mcpgw_core::gateway_sync::{RouteEntry, RouteTool};
use serde_json::{Value, json};

/// Tool integrity of one route: the approved definitions the registry sent, and the hashes of
/// the definitions the upstream last listed through this gateway. The upstream can change its
/// tools between two registry discoveries, so the live hash decides when one is known; until a
/// list has passed through, the registry's current hash stands in.
///
/// Every path that lists or calls a server's tools (the per-server endpoint, and the
/// aggregated endpoint when it comes) goes through [`Integrity::gate`] and
/// [`Integrity::apply_to_list`].
pub struct Integrity {
    /// None: the registry has no tools of this server to compare with; nothing is enforced.
    mode: Option<IntegrityMode>,
    tools: HashMap<String, RouteTool>,
    /// Tool name → hash of the definition last listed live (None: not a valid definition).
    /// Only names the registry knows are kept, so an upstream cannot grow it without bound.
    live: RwLock<HashMap<String, Option<String>>>,
}

impl Integrity {
    pub fn new(entry: &RouteEntry) -> Self {
        Self {
            mode: entry.tool_integrity,
            tools: entry
                .tools
                .iter()
                .map(|t| (t.name.clone(), t.clone()))
                .collect(),
            live: RwLock::new(HashMap::new()),
        }
    }

    fn decide(&self, mode: IntegrityMode, name: &str, live: Option<&Option<String>>) -> Gate {
        match (self.tools.get(name), live) {
            // A tool the registry has never heard of is new: never approved.
            (None, _) => Gate::Hide,
            (Some(t), Some(hash)) => {
                integrity::gate(mode, t.approved_hash.as_deref(), hash.as_deref())
            }
            (Some(t), None) => t.gate(mode, None),
        }
    }

    /// What to do with a call to `tool`: `Hide` answers it exactly like an unknown tool.
    pub fn gate(&self, tool: &str) -> Gate {
        let Some(mode) = self.mode else {
            return Gate::Serve;
        };
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        self.decide(mode, tool, live.get(tool))
    }

    /// Holds a `tools/list` result to the approved definitions: unchanged tools stay, changed
    /// ones are replaced by their approved definition (`serve_approved`) or removed, new ones
    /// are removed. Learns the live hashes on the way.
    pub fn apply_to_list(&self, result: &mut Value) {
        let Some(mode) = self.mode else {
            return;
        };
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
            return;
        };
        let mut seen = Vec::new();
        let mut kept = Vec::with_capacity(tools.len());
        for tool in std::mem::take(tools) {
            let Some(name) = tool.get("name").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let hash = integrity::live_hash(&tool);
            match self.decide(mode, &name, Some(&hash)) {
                Gate::Serve => kept.push(tool),
                Gate::ServeApproved => {
                    if let Some(approved) = self.tools.get(&name).and_then(|t| t.approved.clone()) {
                        kept.push(approved);
                    }
                }
                Gate::Hide => {}
            }
            if self.tools.contains_key(&name) {
                seen.push((name, hash));
            }
        }
        *tools = kept;
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        live.extend(seen);
    }
}

/// What a caller may see of one server's lists.
pub struct ListFilter<'a> {
    /// Whether the caller may call this tool (policy and write protection).
    pub tool_visible: &'a dyn Fn(&str, bool) -> bool,
    pub prompts_visible: bool,
    pub resources_visible: bool,
}

/// Filters the `result` of a list method in place. Returns the tool hints seen
/// (name, read-only) for `tools/list`, before filtering.
pub fn filter_list(
    method: &str,
    result: &mut Value,
    filter: &ListFilter<'_>,
) -> Vec<(String, bool)> {
    let mut hints = Vec::new();
    match method {
        "tools/list" => {
            if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
                tools.retain(|tool| {
                    let Some(name) = tool.get("name").and_then(Value::as_str) else {
                        return false;
                    };
                    let read_only = tool
                        .pointer("/annotations/readOnlyHint")
                        .and_then(Value::as_bool)
                        == Some(true);
                    hints.push((name.to_owned(), read_only));
                    (filter.tool_visible)(name, read_only)
                });
            }
        }
        "prompts/list" if !filter.prompts_visible => {
            if let Some(p) = result.get_mut("prompts") {
                *p = json!([]);
            }
            strip_cursor(result);
        }
        "resources/list" if !filter.resources_visible => {
            if let Some(r) = result.get_mut("resources") {
                *r = json!([]);
            }
            strip_cursor(result);
        }
        "resources/templates/list" if !filter.resources_visible => {
            if let Some(r) = result.get_mut("resourceTemplates") {
                *r = json!([]);
            }
            strip_cursor(result);
        }
        _ => {}
    }
    hints
}

fn strip_cursor(result: &mut Value) {
    if let Some(o) = result.as_object_mut() {
        o.remove("nextCursor");
    }
}

/// Cuts a `tools/call` result larger than `max` bytes: text is shortened, content beyond the
/// budget is dropped, structured content too large to keep is dropped, and a text item says
/// what happened. Returns the original size when it cut.
pub fn cap_tool_result(result: &mut Value, max: usize) -> Option<usize> {
    let size = serde_json::to_vec(result).map(|v| v.len()).unwrap_or(0);
    if size <= max {
        return None;
    }
    // Room for the notice and the JSON around the items.
    let mut budget = max.saturating_sub(400);
    if let Some(obj) = result.as_object_mut() {
        if let Some(structured) = obj.get("structuredContent") {
            let s = serde_json::to_vec(structured).map(|v| v.len()).unwrap_or(0);
            if s > budget / 2 {
                obj.remove("structuredContent");
            } else {
                budget -= s;
            }
        }
        if let Some(content) = obj.get_mut("content").and_then(Value::as_array_mut) {
            let mut kept = Vec::new();
            for mut item in std::mem::take(content) {
                let item_size = serde_json::to_vec(&item).map(|v| v.len()).unwrap_or(0);
                if item_size <= budget {
                    budget -= item_size;
                    kept.push(item);
                    continue;
                }
                if let Some(text) = item.get("text").and_then(Value::as_str) {
                    let room = budget.saturating_sub(item_size - text.len());
                    if room > 0 {
                        let cut = floor_char_boundary(text, room);
                        item["text"] = Value::String(text[..cut].to_owned());
                        kept.push(item);
                    }
                }
                break;
            }
            kept.push(json!({
                "type": "text",
                "text": format!(
                    "[mcpgw: this tool result was {size} bytes and has been cut to about {max} bytes, the limit set for this server. Ask for a narrower result (filters, paging) if you need the rest.]"
                )
            }));
            *content = kept;
        }
    }
    Some(size)
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route entry whose approved `lookup` says `approved`; the registry also knows `extra`
    /// (never approved).
    fn entry(approved: &str, mode: IntegrityMode) -> RouteEntry {
        use mcpgw_core::domain::{ServerRecord, ServerSpec, ToolSpec, integrity};
        let spec: ServerSpec = serde_json::from_value(json!({
            "path": "crm", "name": "crm", "governance": {"owner_team": "t"},
            "endpoint": {"transport": "streamable-http", "url": "https://crm.example/mcp"}
        }))
        .unwrap();
        let keyring = mcpgw_core::secrets::Keyring::from_base64(
            &mcpgw_core::secrets::Keyring::generate_base64(),
            &[],
        )
        .unwrap();
        let mut record =
            ServerRecord::create(spec.validate().unwrap(), &keyring, "t", true).unwrap();
        let tool = |name: &str, description: &str| {
            ToolSpec::from_mcp(&tool_value(name, description))
                .unwrap()
                .validate("t")
                .unwrap()
        };
        record.tools = vec![tool("lookup", approved)];
        record.approved_tools = Some(integrity::approve(None, &record.tools, None, "rev"));
        record.tools.push(tool("extra", "never approved"));
        RouteEntry::from_record(&record, mode)
    }

    fn tool_value(name: &str, description: &str) -> Value {
        json!({"name": name, "description": description, "inputSchema": {"type": "object"}})
    }

    fn listed(integrity: &Integrity, tools: Vec<Value>) -> Vec<Value> {
        let mut result = json!({ "tools": tools });
        integrity.apply_to_list(&mut result);
        result["tools"].as_array().unwrap().clone()
    }

    #[test]
    fn a_live_change_is_withheld_and_remembered_for_calls() {
        let integrity = Integrity::new(&entry("honest", IntegrityMode::WithholdChanged));
        assert_eq!(
            integrity.gate("lookup"),
            Gate::Serve,
            "registry hash, before any list"
        );
        assert_eq!(integrity.gate("extra"), Gate::Hide);
        assert_eq!(integrity.gate("never_heard_of"), Gate::Hide);
        let honest = listed(
            &integrity,
            vec![tool_value("lookup", "honest"), tool_value("extra", "x")],
        );
        assert_eq!(honest, vec![tool_value("lookup", "honest")]);
        let poisoned = listed(&integrity, vec![tool_value("lookup", "poisoned")]);
        assert!(poisoned.is_empty());
        assert_eq!(
            integrity.gate("lookup"),
            Gate::Hide,
            "the live hash decides calls"
        );
        listed(&integrity, vec![tool_value("lookup", "honest")]);
        assert_eq!(
            integrity.gate("lookup"),
            Gate::Serve,
            "and follows the upstream back"
        );
    }

    #[test]
    fn serve_approved_lists_the_approved_definition_and_unchecked_routes_pass() {
        let integrity = Integrity::new(&entry("honest", IntegrityMode::ServeApproved));
        let shown = listed(
            &integrity,
            vec![tool_value("lookup", "poisoned"), json!({"name": 3})],
        );
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0]["description"], "honest");
        assert_eq!(integrity.gate("lookup"), Gate::ServeApproved);
        let mut nothing_recorded = entry("x", IntegrityMode::WithholdChanged);
        nothing_recorded.tool_integrity = None;
        let open = Integrity::new(&nothing_recorded);
        assert_eq!(listed(&open, vec![tool_value("anything", "x")]).len(), 1);
        assert_eq!(open.gate("anything"), Gate::Serve);
    }

    #[test]
    fn tools_list_keeps_only_visible_tools_and_reports_hints() {
        let mut result = json!({"tools": [
            {"name": "read", "annotations": {"readOnlyHint": true}},
            {"name": "write"},
            {"name": "secret", "annotations": {"readOnlyHint": true}},
        ]});
        let visible = |name: &str, read_only: bool| name != "secret" && read_only;
        let hints = filter_list(
            "tools/list",
            &mut result,
            &ListFilter {
                tool_visible: &visible,
                prompts_visible: true,
                resources_visible: true,
            },
        );
        assert_eq!(
            result,
            json!({"tools": [{"name": "read", "annotations": {"readOnlyHint": true}}]})
        );
        assert_eq!(
            hints,
            vec![
                ("read".to_owned(), true),
                ("write".to_owned(), false),
                ("secret".to_owned(), true)
            ]
        );
    }

    #[test]
    fn lists_of_unusable_kinds_come_back_empty() {
        let mut result = json!({"prompts": [{"name": "p"}], "nextCursor": "x"});
        let any = |_: &str, _: bool| true;
        filter_list(
            "prompts/list",
            &mut result,
            &ListFilter {
                tool_visible: &any,
                prompts_visible: false,
                resources_visible: true,
            },
        );
        assert_eq!(result, json!({"prompts": []}));
    }

    #[test]
    fn a_large_result_is_cut_with_a_notice_and_a_small_one_is_untouched() {
        let mut small = json!({"content": [{"type": "text", "text": "hi"}]});
        assert_eq!(cap_tool_result(&mut small, 1024), None);
        let big_text = "é".repeat(5000);
        let mut big = json!({"content": [
            {"type": "text", "text": big_text},
            {"type": "text", "text": "never reached"}
        ], "structuredContent": {"rows": big_text}});
        let original = cap_tool_result(&mut big, 2048).unwrap();
        assert!(original > 20_000);
        let size = serde_json::to_vec(&big).unwrap().len();
        assert!(size <= 2048, "{size}");
        let content = big["content"].as_array().unwrap();
        assert_eq!(content.len(), 2);
        assert!(content[0]["text"].as_str().unwrap().starts_with("éé"));
        assert!(
            content[1]["text"]
                .as_str()
                .unwrap()
                .contains("has been cut")
        );
        assert!(big.get("structuredContent").is_none());
    }
}
