//! Changes the gateway makes to answers on their way back: lists filtered to what the caller
//! may use, and tool results cut to a size an agent's context can hold.

use serde_json::{Value, json};

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
