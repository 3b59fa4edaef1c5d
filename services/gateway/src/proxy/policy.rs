//! The policy step: which methods and tools a caller may use on a server (`decide`), and the
//! rate limits of tool calls (`check_rates`).

use super::*;

/// Methods that keep a session going rather than use the server: allowed to any caller with
/// some rule for the server, even when the scope document does not list them.
pub(super) const HOUSEKEEPING: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "subscriptions/listen",
    "logging/setLevel",
];

pub(super) enum Verdict {
    Allow {
        matched: Option<String>,
    },
    /// The caller may not use this method here: 403 with the scopes that would allow it.
    Forbidden {
        reason: &'static str,
    },
    /// A tool the caller may not call: answered exactly like a tool that does not exist.
    Hidden {
        reason: &'static str,
    },
}

pub(super) fn decide(call: &Call, method: &str, tool: Option<&str>) -> Verdict {
    let caller = call.routes.policy.caller(&call.caller.identity);
    let server = call.server();
    if method == "tools/call" {
        let Some(tool) = tool else {
            return Verdict::Forbidden {
                reason: DecisionReason::ToolNameMissing.as_str(),
            };
        };
        let d = caller.decide(server, method, Some(tool));
        if d.allowed {
            // New, or changed while changed tools are withheld: as if it did not exist.
            if call.route.integrity.gate(tool) == Gate::Hide {
                return Verdict::Hidden {
                    reason: "tool_not_approved",
                };
            }
            if call.route.entry.gateway.read_only
                && !call.route.is_read_only(tool)
                && !d.write_allowed
            {
                return Verdict::Hidden {
                    reason: "write_protected",
                };
            }
            return Verdict::Allow {
                matched: d.matched.map(|m| m.label()),
            };
        }
        return match d.reason {
            DecisionReason::ToolNotAllowed => Verdict::Hidden {
                reason: d.reason.as_str(),
            },
            other => Verdict::Forbidden {
                reason: other.as_str(),
            },
        };
    }
    let d = caller.decide(server, method, None);
    if d.allowed {
        return Verdict::Allow {
            matched: d.matched.map(|m| m.label()),
        };
    }
    let has_server_rule = matches!(
        d.reason,
        DecisionReason::MethodNotAllowed | DecisionReason::ToolNotAllowed
    );
    if has_server_rule && (HOUSEKEEPING.contains(&method) || method.starts_with("notifications/")) {
        return Verdict::Allow { matched: None };
    }
    Verdict::Forbidden {
        reason: d.reason.as_str(),
    }
}

pub(super) fn check_rates(call: &Call, tool: &str) -> Result<(), crate::limits::RetryAfter> {
    let settings = &call.route.entry.gateway;
    let limits = &call.gw.config.limits;
    let per_server = settings.calls_per_minute.unwrap_or(limits.calls_per_minute);
    let key = format!("{}\n{}", call.caller.limit_key(), call.server());
    call.gw.rate.take(&key, per_server)?;
    let per_tool = settings
        .tool_calls_per_minute
        .get(tool)
        .copied()
        .unwrap_or(limits.tool_calls_per_minute);
    if per_tool > 0 {
        call.gw.rate.take(&format!("{key}\n{tool}"), per_tool)?;
    }
    Ok(())
}
