//! Behaviour of the policy engine, from files as users have them to decisions.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::*;

/// The anchor system's admin document, as its seed script writes it.
const ANCHOR_ADMIN_JSON: &str = r#"{
  "_id": "mcp-registry-admin",
  "group_mappings": ["mcp-registry-admin", "mcp-servers-unrestricted/read"],
  "server_access": [
    {"server": "*", "methods": ["all"], "tools": ["all"]},
    {"server": "api", "methods": ["tokens", "GET", "POST"]},
    {"agents": {"actions": [{"action": "list_agents", "resources": ["all"]}]}}
  ],
  "ui_permissions": {
    "list_service": ["all"], "register_service": ["all"], "toggle_service": ["/weather"],
    "list_agents": ["all"]
  }
}"#;

/// A restricted scope in the anchor's format: exact servers, listed methods and tools.
fn lob1() -> serde_json::Value {
    json!({
        "name": "registry-users-lob1",
        "group_mappings": ["registry-users-lob1"],
        "server_access": [
            {"server": "currenttime",
             "methods": ["initialize", "notifications/initialized", "ping", "tools/list", "tools/call"],
             "tools": ["current_time_by_timezone"]},
            {"server": "/mcpgw/", "methods": ["initialize", "tools/list", "tools/call"],
             "tools": ["intelligent_tool_finder"]},
            {"server": "fininfo", "methods": ["*"], "tools": "*"}
        ],
        "ui_permissions": {"list_service": ["currenttime", "/mcpgw"]}
    })
}

fn read_only_everywhere() -> serde_json::Value {
    json!({
        "name": "read-only",
        "group_mappings": ["viewers"],
        "server_access": [{"server": "*", "methods": ["initialize", "tools/list"]}]
    })
}

fn doc(value: serde_json::Value) -> ScopeDocument {
    ScopeDocument::from_value(&value).expect("valid document").0
}

fn policy() -> CompiledPolicy {
    let admin = parse_json(ANCHOR_ADMIN_JSON).unwrap().documents;
    let mut docs = vec![doc(lob1()), doc(read_only_everywhere())];
    docs.extend(admin);
    CompiledPolicy::compile(&docs, 7)
}

fn groups(names: &[&str]) -> Identity {
    Identity::new(names.iter().map(|s| s.to_string()).collect(), Vec::new())
}

fn token_scopes(names: &[&str]) -> Identity {
    Identity::new(Vec::new(), names.iter().map(|s| s.to_string()).collect())
}

// ---------------------------------------------------------------------------------------------
// Which scopes would allow a request (the insufficient_scope challenge)

fn granting_policy() -> CompiledPolicy {
    let docs = [
        json!({"name": "weather-read", "group_mappings": ["readers"], "server_access": [
            {"server": "weather", "methods": ["initialize", "tools/list", "tools/call"],
             "tools": ["forecast"]}]}),
        json!({"name": "weather-echo", "server_access": [
            {"server": "weather", "methods": ["tools/call"], "tools": ["echo"]}]}),
        json!({"name": "weather-all-tools", "server_access": [
            {"server": "/weather/", "methods": ["*"], "tools": "*"}]}),
        json!({"name": "weather-lists-echo", "server_access": [
            {"server": "weather", "methods": ["tools/list"], "tools": ["echo"]}]}),
        json!({"name": "billing-echo", "server_access": [
            {"server": "billing", "methods": ["tools/call"], "tools": ["echo"]}]}),
        json!({"name": "unrestricted", "server_access": [
            {"server": "*", "methods": ["all"], "tools": ["all"]}]}),
    ];
    CompiledPolicy::compile(&docs.map(doc), 1)
}

#[test]
fn the_scopes_granting_a_tool_are_those_that_would_allow_it_on_that_server() {
    let p = granting_policy();
    let reader = p.caller(&groups(&["readers"]));
    assert!(!reader.decide("weather", "tools/call", Some("echo")).allowed);
    // Not the caller's own weather-read, not a document that only lists echo, not echo on
    // another server, and not the wildcard one while narrower documents exist.
    assert_eq!(
        reader.scopes_granting("weather", "tools/call", Some("echo"), 20),
        ["weather-all-tools", "weather-echo"]
    );
    assert_eq!(
        reader.scopes_granting("weather", "tools/call", Some("echo"), 1),
        ["weather-all-tools"]
    );
    // Every named scope does allow it, and the caller's own do not appear even when they would.
    for name in reader.scopes_granting("weather", "tools/call", Some("echo"), 20) {
        assert!(
            p.decide(
                &token_scopes(&[name]),
                "weather",
                "tools/call",
                Some("echo")
            )
            .allowed
        );
    }
    let holder = p.caller(&token_scopes(&["weather-echo"]));
    assert_eq!(
        holder.scopes_granting("weather", "tools/call", Some("echo"), 20),
        ["weather-all-tools"]
    );
}

#[test]
fn only_a_wildcard_server_document_is_named_when_nothing_narrower_grants() {
    let p = granting_policy();
    let nobody = p.caller(&Identity::default());
    assert_eq!(
        nobody.scopes_granting("payroll", "tools/call", Some("run"), 20),
        ["unrestricted"]
    );
    assert_eq!(
        nobody.scopes_granting("weather", "resources/read", None, 20),
        ["weather-all-tools"]
    );
}

#[test]
fn no_scope_is_named_for_a_tool_call_without_a_tool_name() {
    let p = granting_policy();
    let reader = p.caller(&groups(&["readers"]));
    assert!(
        reader
            .scopes_granting("weather", "tools/call", None, 20)
            .is_empty()
    );
    let only_specific = CompiledPolicy::compile(&[doc(lob1())], 1);
    assert!(
        only_specific
            .caller(&Identity::default())
            .scopes_granting("payroll", "tools/call", Some("run"), 20)
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Decisions

#[test]
fn a_wildcard_server_rule_grants_every_server() {
    let p = policy();
    let admin = groups(&["mcp-registry-admin"]);
    for server in ["weather", "currenttime", "anything-at-all"] {
        let d = p.decide(&admin, server, "tools/call", Some("whatever"));
        assert!(d.allowed, "{server}: {d}");
    }
}

#[test]
fn an_exact_server_rule_grants_only_that_server() {
    let p = policy();
    let lob1 = groups(&["registry-users-lob1"]);
    assert!(p.decide(&lob1, "currenttime", "tools/list", None).allowed);
    let d = p.decide(&lob1, "weather", "tools/list", None);
    assert!(!d.allowed);
    assert_eq!(d.reason, DecisionReason::NoRuleForServer);
}

#[test]
fn server_names_match_with_or_without_slashes() {
    let p = policy();
    let lob1 = groups(&["registry-users-lob1"]);
    // The rule says `/mcpgw/`; requests may say `mcpgw` or `/mcpgw`.
    for server in ["mcpgw", "/mcpgw", "mcpgw/"] {
        assert!(
            p.decide(&lob1, server, "initialize", None).allowed,
            "{server}"
        );
    }
}

#[test]
fn a_listed_method_is_allowed_and_an_unlisted_one_is_denied() {
    let p = policy();
    let lob1 = groups(&["registry-users-lob1"]);
    assert!(p.decide(&lob1, "currenttime", "ping", None).allowed);
    let d = p.decide(&lob1, "currenttime", "resources/list", None);
    assert!(!d.allowed);
    assert_eq!(d.reason, DecisionReason::MethodNotAllowed);
    assert_eq!(d.matched, None);
}

#[test]
fn tools_call_is_allowed_for_a_listed_tool() {
    let p = policy();
    let lob1 = groups(&["registry-users-lob1"]);
    let d = p.decide(
        &lob1,
        "currenttime",
        "tools/call",
        Some("current_time_by_timezone"),
    );
    assert!(d.allowed, "{d}");
}

#[test]
fn tools_call_is_denied_for_an_unlisted_tool() {
    let p = policy();
    let lob1 = groups(&["registry-users-lob1"]);
    let d = p.decide(&lob1, "currenttime", "tools/call", Some("set_system_clock"));
    assert!(!d.allowed);
    assert_eq!(d.reason, DecisionReason::ToolNotAllowed);
}

#[test]
fn tools_call_without_a_tool_name_is_denied() {
    let p = policy();
    let admin = groups(&["mcp-registry-admin"]);
    let d = p.decide(&admin, "currenttime", "tools/call", None);
    assert!(!d.allowed);
    assert_eq!(d.reason, DecisionReason::ToolNameMissing);
}

#[test]
fn tools_call_needs_tools_call_in_methods_as_well_as_the_tool() {
    let d = doc(
        json!({"name": "lister", "group_mappings": ["g"], "server_access": [
            {"server": "weather", "methods": ["tools/list"], "tools": ["forecast"]}
        ]}),
    );
    let p = CompiledPolicy::compile(std::slice::from_ref(&d), 1);
    let id = groups(&["g"]);
    let call = p.decide(&id, "weather", "tools/call", Some("forecast"));
    assert!(!call.allowed);
    assert_eq!(call.reason, DecisionReason::MethodNotAllowed);
    // The author is told, since the anchor system would have allowed it.
    assert!(d.lint().iter().any(|n| n.field == "server_access[0].tools"));
}

#[test]
fn a_method_name_in_tools_does_not_grant_the_method() {
    // The anchor system falls back to `tools` for methods; mcpgw reads `methods` only.
    let d = doc(
        json!({"name": "s", "group_mappings": ["g"], "server_access": [
            {"server": "weather", "methods": ["tools/call"], "tools": ["resources/list"]}
        ]}),
    );
    let p = CompiledPolicy::compile(&[d], 1);
    assert!(
        !p.decide(&groups(&["g"]), "weather", "resources/list", None)
            .allowed
    );
}

#[test]
fn all_and_star_are_the_same_wildcard_for_methods_and_tools() {
    let with = |w: &str| {
        doc(
            json!({"name": format!("s-{}", if w == "*" { "star" } else { w }), "group_mappings": ["g"],
                   "server_access": [{"server": "weather", "methods": [w], "tools": [w]}]}),
        )
    };
    for w in ["all", "*"] {
        let p = CompiledPolicy::compile(&[with(w)], 1);
        let id = groups(&["g"]);
        assert!(p.decide(&id, "weather", "prompts/get", None).allowed, "{w}");
        assert!(
            p.decide(&id, "weather", "tools/call", Some("x")).allowed,
            "{w}"
        );
    }
    // `tools` may be the string "*" in the anchor's files.
    let p = policy();
    let lob1 = groups(&["registry-users-lob1"]);
    assert!(
        p.decide(&lob1, "fininfo", "tools/call", Some("quote"))
            .allowed
    );
}

#[test]
fn all_as_a_server_is_a_server_name_not_a_wildcard() {
    let d = doc(
        json!({"name": "s", "group_mappings": ["g"], "server_access": [
            {"server": "all", "methods": ["all"], "tools": ["all"]}
        ]}),
    );
    let p = CompiledPolicy::compile(std::slice::from_ref(&d), 1);
    assert!(
        !p.decide(&groups(&["g"]), "weather", "tools/list", None)
            .allowed
    );
    assert!(p.decide(&groups(&["g"]), "all", "tools/list", None).allowed);
    assert!(
        d.lint()
            .iter()
            .any(|n| n.field == "server_access[0].server")
    );
}

#[test]
fn a_group_maps_to_its_scope_documents() {
    let p = policy();
    let d = p.decide(&groups(&["viewers"]), "weather", "tools/list", None);
    assert!(d.allowed);
    assert_eq!(d.matched.unwrap().scope.as_ref(), "read-only");
}

#[test]
fn a_token_scope_names_a_scope_document_directly() {
    let p = policy();
    let id = token_scopes(&["openid", "profile", "registry-users-lob1"]);
    assert!(p.decide(&id, "currenttime", "tools/list", None).allowed);
    // The same scope name given as a group maps through group_mappings instead.
    assert!(
        !p.decide(&groups(&["read-only"]), "weather", "tools/list", None)
            .allowed
    );
}

#[test]
fn groups_and_token_scopes_add_up() {
    let p = policy();
    let id = Identity::from_claims(vec!["viewers".into()], "registry-users-lob1 email");
    assert!(p.decide(&id, "weather", "initialize", None).allowed);
    assert!(
        p.decide(
            &id,
            "currenttime",
            "tools/call",
            Some("current_time_by_timezone")
        )
        .allowed
    );
    let names: Vec<&str> = p.caller(&id).scope_names().collect();
    assert_eq!(names, ["read-only", "registry-users-lob1"]);
}

#[test]
fn an_unknown_group_is_denied() {
    let p = policy();
    let d = p.decide(&groups(&["contractors"]), "weather", "initialize", None);
    assert!(!d.allowed);
    assert_eq!(d.reason, DecisionReason::NoKnownScope);
}

#[test]
fn no_identity_is_denied() {
    let p = policy();
    let d = p.decide(&Identity::default(), "weather", "initialize", None);
    assert!(!d.allowed);
    assert_eq!(d.reason, DecisionReason::NoIdentity);
    assert_eq!(d.matched, None);
}

#[test]
fn an_empty_policy_denies_everyone() {
    let p = CompiledPolicy::empty(0);
    let d = p.decide(&groups(&["mcp-registry-admin"]), "weather", "ping", None);
    assert!(!d.allowed);
}

#[test]
fn the_decision_reports_the_rule_that_matched() {
    let p = policy();
    let lob1 = groups(&["registry-users-lob1"]);
    let d = p.decide(
        &lob1,
        "mcpgw",
        "tools/call",
        Some("intelligent_tool_finder"),
    );
    assert_eq!(
        d.matched,
        Some(MatchedRule {
            scope: Arc::from("registry-users-lob1"),
            rule_index: 1
        })
    );
    assert_eq!(
        d.to_string(),
        r#"allowed by scope "registry-users-lob1" server_access[1]"#
    );
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({"allowed": true, "reason": "allowed", "write_allowed": false,
               "matched": {"scope": "registry-users-lob1", "rule_index": 1}})
    );
}

#[test]
fn the_first_scope_by_name_and_the_lowest_rule_index_win() {
    let a = doc(
        json!({"name": "b-scope", "group_mappings": ["g"], "server_access": [
            {"server": "*", "methods": ["ping"]},
            {"server": "weather", "methods": ["ping"]}
        ]}),
    );
    let b = doc(
        json!({"name": "a-scope", "group_mappings": ["g"], "server_access": [
            {"server": "other", "methods": ["ping"]},
            {"server": "weather", "methods": ["all"]}
        ]}),
    );
    // Storage order does not matter.
    for docs in [vec![a.clone(), b.clone()], vec![b, a]] {
        let p = CompiledPolicy::compile(&docs, 1);
        let d = p.decide(&groups(&["g"]), "weather", "ping", None);
        assert_eq!(
            d.matched,
            Some(MatchedRule {
                scope: Arc::from("a-scope"),
                rule_index: 1
            })
        );
    }
    let p = CompiledPolicy::compile(
        &[doc(
            json!({"name": "b-scope", "group_mappings": ["g"], "server_access": [
                {"server": "*", "methods": ["ping"]},
                {"server": "weather", "methods": ["ping"]}
            ]}),
        )],
        1,
    );
    // The `*` rule comes first in the document, so it is the one reported.
    let d = p.decide(&groups(&["g"]), "weather", "ping", None);
    assert_eq!(d.matched.unwrap().rule_index, 0);
}

#[test]
fn allowed_tools_keeps_only_callable_tools_and_agrees_with_decide() {
    let p = policy();
    let lob1 = groups(&["registry-users-lob1"]);
    let listed = [
        "current_time_by_timezone",
        "set_system_clock",
        "intelligent_tool_finder",
    ];
    assert_eq!(
        p.allowed_tools(&lob1, "currenttime", listed),
        ["current_time_by_timezone"]
    );
    assert_eq!(p.allowed_tools(&lob1, "fininfo", listed), listed);
    assert!(p.allowed_tools(&lob1, "weather", listed).is_empty());
    assert!(
        p.allowed_tools(&groups(&["viewers"]), "weather", listed)
            .is_empty()
    );

    let both = Identity::from_claims(
        vec!["viewers".into(), "registry-users-lob1".into()],
        "mcp-registry-admin",
    );
    for id in [lob1, groups(&["viewers"]), both, Identity::default()] {
        let caller = p.caller(&id);
        for server in ["currenttime", "mcpgw", "fininfo", "weather"] {
            let filter = caller.tool_filter(server);
            for tool in listed {
                let direct = caller.decide(server, "tools/call", Some(tool));
                assert_eq!(filter.decide(tool), direct, "{server} {tool}");
                assert_eq!(filter.allows(tool), direct.allowed, "{server} {tool}");
            }
        }
    }
}

#[test]
fn ui_permissions_allow_listed_resources_or_all() {
    let p = policy();
    let admin = groups(&["mcp-registry-admin"]);
    assert!(p.ui_allowed(&admin, "register_service", "weather"));
    assert!(p.ui_allowed(&admin, "toggle_service", "weather"));
    assert!(p.ui_allowed(&admin, "toggle_service", "/weather"));
    assert!(!p.ui_allowed(&admin, "toggle_service", "fininfo"));
    assert!(!p.ui_allowed(&admin, "delete_service", "weather"));

    let lob1 = p.caller(&groups(&["registry-users-lob1"]));
    assert!(lob1.ui_allowed("list_service", "mcpgw"));
    assert!(!lob1.ui_allowed("list_service", "weather"));
    assert!(!lob1.ui_allowed("list_service", "all"));
    let grant = lob1.ui_grant("list_service");
    assert_eq!(
        grant,
        UiGrant::Only(["currenttime".to_string(), "mcpgw".to_string()].into())
    );
    assert!(grant.allows("/currenttime"));
    assert_eq!(p.caller(&admin).ui_grant("list_service"), UiGrant::All);
    assert!(lob1.ui_grant("delete_service").is_none());
}

#[test]
fn a_compiled_policy_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledPolicy>();
    assert_send_sync::<Decision>();
    let p = Arc::new(policy());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                p.decide(&groups(&["viewers"]), "weather", "initialize", None)
                    .allowed
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap());
    }
    assert_eq!(p.version(), 7);
}

#[test]
fn compile_keeps_the_later_of_two_documents_with_one_name() {
    let first = doc(
        json!({"name": "s", "group_mappings": ["g"], "server_access": [
        {"server": "weather", "methods": ["ping"]}]}),
    );
    let second = doc(
        json!({"name": "s", "group_mappings": ["g"], "server_access": [
        {"server": "fininfo", "methods": ["ping"]}]}),
    );
    let p = CompiledPolicy::compile(&[first, second], 1);
    assert!(!p.decide(&groups(&["g"]), "weather", "ping", None).allowed);
    assert!(p.decide(&groups(&["g"]), "fininfo", "ping", None).allowed);
    assert_eq!(p.warnings().len(), 1);
    assert_eq!(p.stats().scopes, 1);
}

#[test]
fn a_snapshot_round_trips_through_json_and_compiles() {
    let snapshot = PolicySnapshot {
        version: 42,
        documents: vec![doc(lob1()), doc(read_only_everywhere())],
    };
    let text = serde_json::to_string(&snapshot).unwrap();
    let back: PolicySnapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(back, snapshot);
    let p = back.compile();
    assert_eq!(p.version(), 42);
    assert_eq!(
        p.stats(),
        PolicyStats {
            scopes: 2,
            groups: 2,
            rules: 4
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Documents and imports

#[test]
fn the_anchor_admin_json_document_imports_as_it_is() {
    let import = parse_json(ANCHOR_ADMIN_JSON).unwrap();
    assert_eq!(import.shape, ImportShape::Document);
    let [admin] = import.documents.as_slice() else {
        panic!("one document")
    };
    assert_eq!(admin.name(), "mcp-registry-admin");
    assert_eq!(
        admin.group_mappings(),
        ["mcp-registry-admin", "mcp-servers-unrestricted/read"]
    );
    assert_eq!(admin.server_access().len(), 3);
    // The agents entry is kept, unevaluated; the `api` rule is kept but can never match.
    assert!(matches!(admin.server_access()[2], AccessEntry::Opaque(_)));
    let fields: Vec<&str> = import.notes.iter().map(|n| n.field.as_str()).collect();
    assert_eq!(fields, ["server_access[1].server", "server_access[2]"]);
    // It serializes canonically (`name`, tools as a list) and reads back the same.
    let text = serde_json::to_value(admin).unwrap();
    assert_eq!(text["name"], "mcp-registry-admin");
    assert_eq!(
        text["server_access"][2]["agents"]["actions"][0]["action"],
        "list_agents"
    );
    let again: ScopeDocument = serde_json::from_value(text).unwrap();
    assert_eq!(&again, admin);
}

#[test]
fn a_list_of_documents_and_json_lines_both_import() {
    let list = serde_json::to_string(&json!([lob1(), read_only_everywhere()])).unwrap();
    let import = parse_json(&list).unwrap();
    assert_eq!(import.shape, ImportShape::Documents);
    assert_eq!(import.documents.len(), 2);

    let lines = format!("{}\n{}\n", lob1(), read_only_everywhere());
    let import = parse_json(&lines).unwrap();
    assert_eq!(import.documents.len(), 2);
    assert_eq!(import.documents[1].name(), "read-only");
}

#[test]
fn a_yaml_document_imports_like_its_json() {
    let yaml = r#"
_id: mcp-servers-unrestricted/read
group_mappings: [mcp-servers-unrestricted]
server_access:
  - server: "*"
    methods: [initialize, notifications/initialized, ping, tools/list, tools/call, GET]
    tools: "*"
  - server: api
    methods: [tokens, GET]
"#;
    let import = parse_yaml(yaml).unwrap();
    assert_eq!(import.shape, ImportShape::Document);
    let p = CompiledPolicy::compile(&import.documents, 1);
    let id = token_scopes(&["mcp-servers-unrestricted/read"]);
    assert!(
        p.decide(&id, "weather", "tools/call", Some("forecast"))
            .allowed
    );
    assert!(!p.decide(&id, "weather", "resources/read", None).allowed);
}

const LEGACY_SCOPES_YML: &str = r#"
UI-Scopes:
  mcp-registry-admin:
    list_service: [all]
    toggle_service: [all]
  mcp-registry-user:
    list_service: [mcpgw, currenttime]
group_mappings:
  # Keycloak groups by name
  mcp-registry-admin:
  - mcp-registry-admin
  - mcp-servers-unrestricted/read
  registry-users-lob1: [registry-users-lob1]
  # Entra ID groups by object id
  "4c46ec66-a4f7-4b62-9095-b7958662f4b6":
  - mcp-servers-unrestricted/read
mcp-servers-unrestricted/read:
- server: currenttime
  methods: [initialize, notifications/initialized, ping, tools/list, tools/call]
  tools: [current_time_by_timezone]
- server: '*'
  methods: [initialize, ping, tools/list]
- agents:
    actions:
    - {action: list_agents, resources: [all]}
registry-users-lob1:
- server: mcpgw
  methods: [initialize, notifications/initialized, ping, tools/list, tools/call]
  tools: [intelligent_tool_finder]
"#;

#[test]
fn the_legacy_scopes_yml_converts_to_one_document_per_scope() {
    let import = parse_yaml(LEGACY_SCOPES_YML).unwrap();
    assert_eq!(import.shape, ImportShape::LegacyScopes);
    let by_name: BTreeMap<&str, &ScopeDocument> =
        import.documents.iter().map(|d| (d.name(), d)).collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        [
            "mcp-registry-admin",
            "mcp-registry-user",
            "mcp-servers-unrestricted/read",
            "registry-users-lob1"
        ]
    );
    let read = by_name["mcp-servers-unrestricted/read"];
    assert_eq!(
        read.group_mappings(),
        ["4c46ec66-a4f7-4b62-9095-b7958662f4b6", "mcp-registry-admin"]
    );
    assert_eq!(read.server_access().len(), 3);
    let admin = by_name["mcp-registry-admin"];
    assert_eq!(admin.group_mappings(), ["mcp-registry-admin"]);
    assert_eq!(admin.ui_permissions()["toggle_service"], ["all"]);
    // mcp-registry-user has UI permissions but no group maps to it: kept, reachable by scope.
    assert!(by_name["mcp-registry-user"].group_mappings().is_empty());
    // Notes point back at the file, not at the converted documents.
    assert!(
        import
            .notes
            .iter()
            .any(|n| n.field == r#"["mcp-servers-unrestricted/read"][2]"#),
        "{:?}",
        import.notes
    );

    let p = CompiledPolicy::compile(&import.documents, 3);
    let entra = groups(&["4c46ec66-a4f7-4b62-9095-b7958662f4b6"]);
    assert!(p.decide(&entra, "weather", "tools/list", None).allowed);
    assert!(
        p.decide(
            &entra,
            "currenttime",
            "tools/call",
            Some("current_time_by_timezone")
        )
        .allowed
    );
    assert!(
        !p.decide(&entra, "weather", "tools/call", Some("forecast"))
            .allowed
    );
    let admin = groups(&["mcp-registry-admin"]);
    assert!(p.ui_allowed(&admin, "toggle_service", "weather"));
    assert!(!p.ui_allowed(&entra, "toggle_service", "weather"));
}

#[test]
fn a_scope_named_only_in_group_mappings_gets_an_empty_document_and_a_note() {
    let import = parse_yaml("group_mappings:\n  g: [nothing-here]\n").unwrap();
    assert_eq!(import.documents.len(), 1);
    assert_eq!(import.documents[0].group_mappings(), ["g"]);
    assert!(import.documents[0].server_access().is_empty());
    assert!(
        import
            .notes
            .iter()
            .any(|n| n.message.contains("nothing-here"))
    );
}

#[test]
fn unknown_fields_are_dropped_with_a_note() {
    let import = parse_json(
        r#"{"_id": "s", "description": "x", "server_access": [
              {"server": "weather", "methods": ["ping"], "comment": "why"}]}"#,
    )
    .unwrap();
    let fields: Vec<&str> = import.notes.iter().map(|n| n.field.as_str()).collect();
    assert_eq!(fields, ["server_access[0].comment", "description"]);
}

/// The first error of a bad file, as `(field, message)`.
fn error_of(result: Result<Import, PolicyError>) -> (String, String) {
    match result {
        Err(PolicyError::Invalid(e)) => (e.field, e.message),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn bad_documents_give_errors_naming_the_path() {
    let bad_method = json!([lob1(), {"name": "x", "server_access": [
        {"server": "a", "methods": ["ping"]},
        {"server": "b", "methods": ["ping"]},
        {"server": "c", "methods": ["ping"]},
        {"server": "d", "methods": [42]}
    ]}]);
    let (field, message) = error_of(parse_json(&bad_method.to_string()));
    assert_eq!(field, "[1].server_access[3].methods[0]");
    assert!(message.contains("must be a string"), "{message}");

    let cases = [
        (json!({"server_access": []}), "name", "required"),
        (json!({"name": "has space"}), "name", "OAuth scope"),
        (json!({"name": "x".repeat(129)}), "name", "at most 128"),
        (json!({"_id": "a", "name": "b"}), "_id", "differs"),
        (
            json!({"name": "x", "group_mappings": "g"}),
            "group_mappings",
            "list",
        ),
        (
            json!({"name": "x", "group_mappings": [" g"]}),
            "group_mappings[0]",
            "whitespace",
        ),
        (
            json!({"name": "x", "server_access": {}}),
            "server_access",
            "list of rules",
        ),
        (
            json!({"name": "x", "server_access": ["*"]}),
            "server_access[0]",
            "object",
        ),
        (
            json!({"name": "x", "server_access": [{"server": "/"}]}),
            "server_access[0].server",
            "names no server",
        ),
        (
            json!({"name": "x", "server_access": [{"server": 1}]}),
            "server_access[0].server",
            "string",
        ),
        (
            json!({"name": "x", "server_access": [{"server": "a", "tools": [""]}]}),
            "server_access[0].tools[0]",
            "empty",
        ),
        (
            json!({"name": "x", "ui_permissions": {"list_service": [1]}}),
            "ui_permissions.list_service[0]",
            "string",
        ),
        (
            json!({"name": "x", "ui_permissions": []}),
            "ui_permissions",
            "object",
        ),
    ];
    for (value, field, message) in cases {
        let (f, m) = error_of(from_value(value.clone()));
        assert_eq!(f, field, "{value}");
        assert!(m.contains(message), "{value}: {m}");
    }
}

#[test]
fn oversized_documents_are_refused() {
    let rules: Vec<_> = (0..1_001)
        .map(|i| json!({"server": format!("s{i}"), "methods": ["ping"]}))
        .collect();
    let (field, message) = error_of(from_value(json!({"name": "x", "server_access": rules})));
    assert_eq!(field, "server_access");
    assert!(message.contains("at most 1000"), "{message}");

    let tools: Vec<String> = (0..1_001).map(|i| format!("t{i}")).collect();
    let (field, _) = error_of(from_value(
        json!({"name": "x", "server_access": [{"server": "a", "methods": ["tools/call"], "tools": tools}]}),
    ));
    assert_eq!(field, "server_access[0].tools");

    let big = " ".repeat(MAX_IMPORT_BYTES + 1);
    assert!(matches!(
        parse_json(&big),
        Err(PolicyError::TooLarge { .. })
    ));
}

#[test]
fn duplicate_scopes_in_one_file_are_refused() {
    let (field, message) = error_of(from_value(json!([
        read_only_everywhere(),
        lob1(),
        read_only_everywhere()
    ])));
    assert_eq!(field, "[2].name");
    assert!(message.contains("also at [0]"), "{message}");
}

#[test]
fn bad_legacy_files_give_errors_naming_the_path() {
    let (field, _) = error_of(parse_yaml(
        "group_mappings:\n  g: [ok]\nsome/scope:\n- server: a\n  methods: {x: 1}\n",
    ));
    assert_eq!(field, r#"["some/scope"][0].methods"#);
    let (field, _) = error_of(parse_yaml("my-scope: not-a-list\n"));
    assert_eq!(field, "my-scope");
    let (field, _) = error_of(parse_yaml("group_mappings:\n  g: [\"bad scope\"]\n"));
    assert_eq!(field, "group_mappings.g[0]");
}

#[test]
fn syntax_errors_name_the_format_and_position() {
    match parse_json(r#"{"name": "x",,}"#) {
        Err(e @ PolicyError::Syntax { .. }) => {
            assert!(e.to_string().contains("line 1"), "{e}");
            let api: crate::error::ApiError = e.into();
            assert_eq!(api.body.code, "invalid_json");
        }
        other => panic!("{other:?}"),
    }
    match parse_yaml("a: [b\n") {
        Err(e @ PolicyError::Syntax { .. }) => {
            assert!(e.to_string().starts_with("not valid YAML"), "{e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
        other => panic!("{other:?}"),
    }
    // Duplicate keys are refused rather than silently resolved.
    assert!(matches!(
        parse_yaml("a: []\na: []\n"),
        Err(PolicyError::Syntax { .. })
    ));
    assert!(matches!(parse_yaml(""), Err(PolicyError::Invalid(_))));
    assert!(matches!(parse_json("   "), Err(PolicyError::Invalid(_))));
}

#[test]
fn a_yaml_alias_bomb_is_stopped_by_the_node_budget() {
    let mut yaml = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for name in 'b'..='i' {
        let refs = vec![format!("*{prev}"); 10].join(", ");
        yaml.push_str(&format!("{name}: &{name} [{refs}]\n"));
        prev = name;
    }
    assert!(matches!(parse_yaml(&yaml), Err(PolicyError::Syntax { .. })));
}

#[test]
fn field_errors_become_invalid_request_api_errors() {
    let e = PolicyError::from(crate::validate::FieldError::new("[0].name", "bad"));
    let api: crate::error::ApiError = e.into();
    assert_eq!(api.body.code, "invalid_request");
    assert_eq!(api.body.field.as_deref(), Some("[0].name"));
}

#[test]
fn scope_documents_built_in_code_are_checked_too() {
    let rule = ServerRule::new("weather", vec!["ping".into()], vec![]).unwrap();
    let doc = ScopeDocument::new(
        "ops",
        vec!["ops-team".into()],
        vec![AccessEntry::Rule(rule)],
        BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(doc.rules().count(), 1);
    let err = ServerRule::new("weather", vec!["ping\n".into()], vec![]).unwrap_err();
    assert_eq!(err.field, "methods[0]");
    let err = ScopeDocument::new("a b", vec![], vec![], BTreeMap::new()).unwrap_err();
    assert_eq!(err.field, "name");
}

// ---------------------------------------------------------------------------------------------
// Write protection (`allow_write`)

/// Every way a caller can be asked about writing one tool on one server must agree: `decide`,
/// the tool filter's `decide` and its `allows_write`.
fn write_allowed(p: &CompiledPolicy, id: &Identity, server: &str, tool: &str) -> bool {
    let caller = p.caller(id);
    let direct = caller.decide(server, "tools/call", Some(tool));
    let filter = caller.tool_filter(server);
    assert_eq!(filter.decide(tool), direct, "{server} {tool}");
    assert_eq!(
        filter.allows_write(tool),
        direct.write_allowed,
        "{server} {tool}"
    );
    assert_eq!(filter.allows(tool), direct.allowed, "{server} {tool}");
    assert!(
        direct.allowed || !direct.write_allowed,
        "{server} {tool}: {direct:?}"
    );
    direct.write_allowed
}

#[test]
fn allow_write_is_off_unless_a_rule_says_so() {
    let p = policy();
    let admin = groups(&["mcp-registry-admin"]);
    let d = p.decide(&admin, "weather", "tools/call", Some("forecast"));
    assert!(d.allowed && !d.write_allowed, "{d:?}");
    assert!(!write_allowed(&p, &admin, "weather", "forecast"));
    let lob1 = groups(&["registry-users-lob1"]);
    assert!(!write_allowed(&p, &lob1, "fininfo", "quote"));
    assert!(!write_allowed(
        &p,
        &lob1,
        "currenttime",
        "current_time_by_timezone"
    ));
    // Denied requests never allow writing.
    let d = p.decide(&lob1, "currenttime", "tools/call", Some("set_system_clock"));
    assert!(!d.allowed && !d.write_allowed);

    let rule = ServerRule::new("aws", vec!["tools/call".into()], vec!["*".into()]).unwrap();
    assert!(!rule.allow_write());
    assert!(rule.with_allow_write(true).allow_write());
    let read = doc(json!({"name": "s", "server_access": [
        {"server": "aws", "methods": ["tools/call"], "tools": "*", "allow_write": false}]}));
    assert!(!read.rules().next().unwrap().1.allow_write());
}

#[test]
fn allow_write_grants_writing_on_the_tools_of_its_rule() {
    let d = doc(
        json!({"name": "aws-admins", "group_mappings": ["g"], "server_access": [
            {"server": "aws", "methods": ["tools/list", "tools/call"], "tools": "*", "allow_write": true}
        ]}),
    );
    let p = CompiledPolicy::compile(&[d], 1);
    let id = groups(&["g"]);
    let call = p.decide(&id, "aws", "tools/call", Some("delete_bucket"));
    assert!(call.allowed && call.write_allowed, "{call:?}");
    assert_eq!(
        call.to_string(),
        r#"allowed by scope "aws-admins" server_access[0], writes allowed"#
    );
    assert!(write_allowed(&p, &id, "/aws/", "never_seen_tool"));
    // Methods other than tools/call report the rule's flag too.
    assert!(p.decide(&id, "aws", "tools/list", None).write_allowed);
}

#[test]
fn a_write_grant_in_one_scope_adds_to_a_read_grant_in_another() {
    // `a-read` comes first by name and allows the call without writing; `b-write` allows the
    // same call with writing. The reported rule stays the first one; writing is the union.
    let read = doc(
        json!({"name": "a-read", "group_mappings": ["readers"], "server_access": [
            {"server": "aws", "methods": ["tools/list", "tools/call"], "tools": ["put_object", "get_object"]}
        ]}),
    );
    let write = doc(
        json!({"name": "b-write", "group_mappings": ["writers"], "server_access": [
            {"server": "other", "methods": ["tools/call"], "tools": "*"},
            {"server": "aws", "methods": ["tools/call"], "tools": ["put_object"], "allow_write": true}
        ]}),
    );
    let unrelated = doc(json!({"name": "c-unrelated", "group_mappings": ["writers"],
        "server_access": [{"server": "aws", "methods": ["ping"], "allow_write": true}]}));
    for docs in [
        vec![read.clone(), write.clone(), unrelated.clone()],
        vec![unrelated, write, read],
    ] {
        let p = CompiledPolicy::compile(&docs, 1);
        let both = groups(&["readers", "writers"]);
        let d = p.decide(&both, "aws", "tools/call", Some("put_object"));
        assert!(d.allowed && d.write_allowed, "{d:?}");
        assert_eq!(
            d.matched,
            Some(MatchedRule {
                scope: Arc::from("a-read"),
                rule_index: 0
            })
        );
        assert!(write_allowed(&p, &both, "aws", "put_object"));
        // Only put_object was granted with writing.
        assert!(!write_allowed(&p, &both, "aws", "get_object"));
        assert!(!write_allowed(
            &p,
            &groups(&["readers"]),
            "aws",
            "put_object"
        ));
        assert!(write_allowed(
            &p,
            &groups(&["writers"]),
            "aws",
            "put_object"
        ));
        // A `ping` rule with allow_write grants writing on `ping`, not on tools.
        assert!(p.decide(&both, "aws", "ping", None).write_allowed);
        assert!(!p.decide(&both, "aws", "tools/list", None).write_allowed);
    }
}

#[test]
fn rules_of_one_scope_add_up_for_writing_too() {
    // Rule 0 grants the tool without writing, rule 1 (a wildcard) with it; `*` rules count too.
    let d = doc(
        json!({"name": "s", "group_mappings": ["g"], "server_access": [
            {"server": "aws", "methods": ["tools/call"], "tools": ["put_object"]},
            {"server": "aws", "methods": ["tools/call"], "tools": "*", "allow_write": true},
            {"server": "gcs", "methods": ["tools/call"], "tools": ["upload"]},
            {"server": "*", "methods": ["tools/call"], "tools": ["upload"], "allow_write": true}
        ]}),
    );
    let p = CompiledPolicy::compile(&[d], 1);
    let id = groups(&["g"]);
    let call = p.decide(&id, "aws", "tools/call", Some("put_object"));
    assert_eq!(
        (call.matched.unwrap().rule_index, call.write_allowed),
        (0, true)
    );
    let call = p.decide(&id, "gcs", "tools/call", Some("upload"));
    assert_eq!(
        (call.matched.unwrap().rule_index, call.write_allowed),
        (2, true)
    );
    assert!(write_allowed(&p, &id, "gcs", "upload"));
    assert!(!write_allowed(&p, &id, "gcs", "download"));
    assert!(write_allowed(&p, &id, "elsewhere", "upload"));
}

#[test]
fn allow_write_does_not_leak_to_other_servers_tools_or_callers() {
    let d = doc(
        json!({"name": "s", "group_mappings": ["g"], "server_access": [
            {"server": "aws", "methods": ["tools/call"], "tools": ["put_object"], "allow_write": true},
            {"server": "aws", "methods": ["tools/call"], "tools": ["get_object"]},
            {"server": "gcs", "methods": ["tools/call"], "tools": "*"},
            {"server": "azure", "methods": ["tools/list"], "tools": "*", "allow_write": true}
        ]}),
    );
    let other = doc(
        json!({"name": "t", "group_mappings": ["h"], "server_access": [
            {"server": "*", "methods": ["all"], "tools": "*"}
        ]}),
    );
    let p = CompiledPolicy::compile(&[d.clone(), other], 1);
    let id = groups(&["g"]);
    assert!(write_allowed(&p, &id, "aws", "put_object"));
    // Another tool of the same server, and the same tool on another server.
    assert!(!write_allowed(&p, &id, "aws", "get_object"));
    assert!(!write_allowed(&p, &id, "gcs", "put_object"));
    assert!(!write_allowed(&p, &id, "gcs", "anything"));
    // A rule with allow_write that does not permit tools/call grants no writing (nor calls).
    assert!(!p.decide(&id, "azure", "tools/call", Some("x")).allowed);
    assert!(!write_allowed(&p, &id, "azure", "x"));
    assert!(
        d.lint()
            .iter()
            .any(|n| n.field == "server_access[3].allow_write"),
        "{:?}",
        d.lint()
    );
    // Another caller whose scope allows everything, without writing.
    let all = groups(&["h"]);
    assert!(!write_allowed(&p, &all, "aws", "put_object"));
    // Both: writing only where `s` grants it.
    let both = groups(&["g", "h"]);
    assert!(write_allowed(&p, &both, "aws", "put_object"));
    assert!(!write_allowed(&p, &both, "aws", "delete_bucket"));
    let listed = ["put_object", "get_object", "delete_bucket"];
    let filter = p.caller(&both).tool_filter("aws");
    let writable: Vec<&str> = listed
        .into_iter()
        .filter(|t| filter.allows_write(t))
        .collect();
    assert_eq!(writable, ["put_object"]);
}

#[test]
fn documents_round_trip_with_and_without_allow_write() {
    let plain = doc(lob1());
    let text = serde_json::to_value(&plain).unwrap();
    // No `allow_write` key appears when it is false: stored documents keep their form.
    assert!(
        text["server_access"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("allow_write").is_none()),
        "{text}"
    );
    assert_eq!(
        serde_json::from_value::<ScopeDocument>(text).unwrap(),
        plain
    );

    let written = json!({"name": "aws-admins", "group_mappings": ["aws-admins"],
        "server_access": [
            {"server": "aws", "methods": ["tools/call"], "tools": ["*"], "allow_write": true},
            {"server": "aws", "methods": ["tools/list"], "tools": []}
        ],
        "ui_permissions": {}});
    let with = doc(written.clone());
    assert!(with.rules().next().unwrap().1.allow_write());
    let text = serde_json::to_value(&with).unwrap();
    assert_eq!(text, written);
    let back: ScopeDocument = serde_json::from_value(text).unwrap();
    assert_eq!(back, with);
    // `"allow_write": false` reads as absent and is not written back.
    let explicit = doc(json!({"name": "x", "server_access": [
        {"server": "a", "methods": ["ping"], "allow_write": false}]}));
    assert_eq!(
        serde_json::to_value(&explicit).unwrap()["server_access"][0],
        json!({"server": "a", "methods": ["ping"], "tools": []})
    );

    let snapshot = PolicySnapshot {
        version: 5,
        documents: vec![plain, with],
    };
    let back: PolicySnapshot =
        serde_json::from_str(&serde_json::to_string(&snapshot).unwrap()).unwrap();
    assert_eq!(back, snapshot);
    let p = back.compile();
    assert!(write_allowed(
        &p,
        &groups(&["aws-admins"]),
        "aws",
        "terminate"
    ));
}

#[test]
fn allow_write_imports_from_yaml_and_json_in_every_shape() {
    let yaml = r#"
_id: aws-admins
group_mappings: [aws-admins]
server_access:
  - server: aws
    methods: [initialize, tools/list, tools/call]
    tools: "*"
    allow_write: true
"#;
    let import = parse_yaml(yaml).unwrap();
    assert!(import.notes.is_empty(), "{:?}", import.notes);
    let p = CompiledPolicy::compile(&import.documents, 1);
    assert!(write_allowed(
        &p,
        &groups(&["aws-admins"]),
        "aws",
        "delete_bucket"
    ));

    // The legacy scopes.yml: rules under a top-level scope key.
    let legacy = r#"
group_mappings:
  ops: [aws-write, aws-read]
aws-write:
- server: aws
  methods: [tools/call]
  tools: [put_object]
  allow_write: true
aws-read:
- server: aws
  methods: [tools/list, tools/call]
  tools: [put_object, get_object]
"#;
    let import = parse_yaml(legacy).unwrap();
    assert_eq!(import.shape, ImportShape::LegacyScopes);
    assert!(import.notes.is_empty(), "{:?}", import.notes);
    let p = CompiledPolicy::compile(&import.documents, 1);
    let ops = groups(&["ops"]);
    assert!(write_allowed(&p, &ops, "aws", "put_object"));
    assert!(!write_allowed(&p, &ops, "aws", "get_object"));

    // JSON lines, as mongoexport writes them.
    let lines = "{\"_id\": \"a\", \"server_access\": [{\"server\": \"aws\", \"methods\": \"*\", \"tools\": \"*\", \"allow_write\": true}]}\n\
                 {\"_id\": \"b\", \"server_access\": [{\"server\": \"aws\", \"methods\": \"*\", \"tools\": \"*\"}]}\n";
    let import = parse_json(lines).unwrap();
    let flags: Vec<bool> = import
        .documents
        .iter()
        .map(|d| d.rules().next().unwrap().1.allow_write())
        .collect();
    assert_eq!(flags, [true, false]);
}

#[test]
fn a_non_boolean_allow_write_is_an_error_naming_the_field() {
    for (value, kind) in [
        (json!("true"), "a string"),
        (json!(1), "a number"),
        (json!(["yes"]), "a list"),
    ] {
        let (field, message) = error_of(from_value(json!([read_only_everywhere(), {
            "name": "x",
            "server_access": [
                {"server": "a", "methods": ["ping"]},
                {"server": "aws", "methods": ["tools/call"], "tools": "*", "allow_write": value}
            ]
        }])));
        assert_eq!(field, "[1].server_access[1].allow_write");
        assert_eq!(message, format!("must be true or false, not {kind}"));
    }
    let (field, message) = error_of(parse_yaml(
        "aws-write:\n- server: aws\n  methods: [tools/call]\n  tools: '*'\n  allow_write: 'yes'\n",
    ));
    assert_eq!(field, "aws-write[0].allow_write");
    assert!(message.contains("true or false"), "{message}");
    // Deserializing a stored document runs the same check.
    let err = serde_json::from_value::<ScopeDocument>(json!({"name": "x", "server_access": [
        {"server": "a", "methods": ["tools/call"], "tools": "*", "allow_write": "no"}]}))
    .unwrap_err();
    assert!(err.to_string().contains("allow_write"), "{err}");
}

#[test]
fn a_matched_rule_label_reads_as_the_debug_format_of_its_scope_name() {
    for name in [
        "registry-users-lob1",
        "mcp servers/unrestricted read",
        "quote\"inside",
        "back\\slash",
        "ümlaut",
        "tab\tname",
        "",
    ] {
        let rule = MatchedRule {
            scope: Arc::from(name),
            rule_index: 12,
        };
        assert_eq!(
            rule.label(),
            format!("scope {name:?} server_access[12]"),
            "{name:?}"
        );
        assert_eq!(rule.to_string(), rule.label());
    }
}
