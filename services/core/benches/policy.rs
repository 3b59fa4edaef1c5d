//! Policy decisions at scale: 1,000 scope documents of 100 rules each.
//!
//! The target is under 5 µs per decision. The data is shaped like a large deployment: 2,000
//! servers with 50 tools each, every document granting 100 distinct servers with one of a few
//! method lists and 5–20 tools (now and then a wildcard), a quarter of the tool rules with
//! `allow_write`, 300 IdP groups each mapped by a handful of documents, and callers in 1 to 5
//! groups. Worst cases are measured: the allowed request is granted only by the caller's last
//! scope, and the denied ones look at every scope the caller has. Writing is the union over all
//! allowing rules, so a call that the caller's first scope allows without writing looks at every
//! later scope too (`allowed_first_scope_no_write_5_groups`).
//!
//! Run with `cargo bench -p mcpgw-core --bench policy`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mcpgw_core::policy::{AccessEntry, CompiledPolicy, Identity, ScopeDocument, ServerRule};

const DOCUMENTS: usize = 1_000;
const RULES: usize = 100;
const SERVERS: usize = 2_000;
const TOOLS_PER_SERVER: usize = 50;
const GROUPS: usize = 300;

fn server(i: usize) -> String {
    format!("srv-{i:04}")
}

fn tool(server: usize, t: usize) -> String {
    format!("srv_{server:04}_tool_{t:02}")
}

fn group(g: usize) -> String {
    format!("group-{g:03}")
}

const READ: &[&str] = &[
    "initialize",
    "notifications/initialized",
    "ping",
    "tools/list",
];
const FULL: &[&str] = &[
    "initialize",
    "notifications/initialized",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
];

/// Document `d`, rule `k`: server `(7d + 19k) mod 2000` (distinct within a document).
fn rule_server(d: usize, k: usize) -> usize {
    (d * 7 + k * 19) % SERVERS
}

fn documents() -> Vec<ScopeDocument> {
    (0..DOCUMENTS)
        .map(|d| {
            let rules = (0..RULES)
                .map(|k| {
                    let s = rule_server(d, k);
                    let allow_write = (d + k) % 50 >= 10 && (d + k) % 4 == 0;
                    let (methods, tools): (Vec<String>, Vec<String>) = match (d + k) % 50 {
                        0 => (vec!["all".into()], vec!["all".into()]),
                        1..=9 => (READ.iter().map(|m| m.to_string()).collect(), vec![]),
                        n => {
                            let count = 5 + n % 16;
                            let first = (d + k) % TOOLS_PER_SERVER;
                            (
                                FULL.iter().map(|m| m.to_string()).collect(),
                                (0..count)
                                    .map(|t| tool(s, (first + t * 3) % TOOLS_PER_SERVER))
                                    .collect(),
                            )
                        }
                    };
                    AccessEntry::Rule(
                        ServerRule::new(server(s), methods, tools)
                            .unwrap()
                            .with_allow_write(allow_write),
                    )
                })
                .collect();
            // One to three groups per document: about seven documents per group.
            let groups = (0..1 + d % 3)
                .map(|j| group((d * 7 + j * 101) % GROUPS))
                .collect();
            let ui =
                BTreeMap::from([("list_service".to_string(), vec![server(rule_server(d, 0))])]);
            ScopeDocument::new(format!("scope-{d:04}"), groups, rules, ui).unwrap()
        })
        .collect()
}

fn identity(groups: &[usize]) -> Identity {
    Identity::new(groups.iter().map(|&g| group(g)).collect(), vec![])
}

/// A `tools/call` only the caller's last scope (in name order) grants, so that every earlier
/// scope is looked at first.
fn last_scope_call(
    policy: &CompiledPolicy,
    docs: &[ScopeDocument],
    id: &Identity,
) -> (String, String) {
    let caller = policy.caller(id);
    let names: Vec<&str> = caller.scope_names().collect();
    let last = *names.last().expect("the identity has scopes");
    let doc = docs.iter().find(|d| d.name() == last).unwrap();
    for (_, rule) in doc.rules().rev() {
        if !rule.permits_tools_call() {
            continue;
        }
        for t in rule.tools() {
            let d = caller.decide(rule.server(), "tools/call", Some(t));
            if d.allowed && d.matched.as_ref().is_some_and(|m| &*m.scope == last) {
                return (rule.server().to_owned(), t.clone());
            }
        }
    }
    panic!("no tool granted only by {last}");
}

/// A `tools/call` the caller's first scope grants without writing, and no other scope grants
/// with writing: the write union then looks at every later scope.
fn first_scope_call_without_write(
    policy: &CompiledPolicy,
    docs: &[ScopeDocument],
    id: &Identity,
) -> (String, String) {
    let caller = policy.caller(id);
    let first = caller
        .scope_names()
        .next()
        .expect("the identity has scopes");
    let doc = docs.iter().find(|d| d.name() == first).unwrap();
    for (_, rule) in doc.rules() {
        if !rule.permits_tools_call() || rule.allow_write() {
            continue;
        }
        for t in rule.tools() {
            let d = caller.decide(rule.server(), "tools/call", Some(t));
            if d.allowed
                && !d.write_allowed
                && d.matched.as_ref().is_some_and(|m| &*m.scope == first)
            {
                return (rule.server().to_owned(), t.clone());
            }
        }
    }
    panic!("no tool granted by {first} without writing");
}

/// Resident memory of this process in MiB, from `/proc/self/statm` (Linux; 0 elsewhere).
fn resident_mib() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn bench(c: &mut Criterion) {
    let docs = documents();
    let before = resident_mib();
    let started = std::time::Instant::now();
    let policy = CompiledPolicy::compile(&docs, 1);
    eprintln!(
        "compile: {:?}, resident memory +{:.0} MiB (documents themselves: {before:.0} MiB in all)",
        started.elapsed(),
        resident_mib() - before
    );
    let stats = policy.stats();
    assert_eq!(stats.rules, DOCUMENTS * RULES);

    let five = identity(&[3, 57, 111, 190, 242]);
    let one = identity(&[57]);
    let scopes_five = policy.caller(&five).scope_names().count();
    let scopes_one = policy.caller(&one).scope_names().count();
    eprintln!(
        "policy: {} scopes, {} rules, {} groups; 5-group caller holds {scopes_five} scopes, \
         1-group caller {scopes_one}",
        stats.scopes, stats.rules, stats.groups
    );

    let (srv5, tool5) = last_scope_call(&policy, &docs, &five);
    let (srv1, tool1) = last_scope_call(&policy, &docs, &one);
    let (srv_first, tool_first) = first_scope_call_without_write(&policy, &docs, &five);
    let writers = policy
        .caller(&five)
        .scope_names()
        .filter(|name| {
            let doc = docs.iter().find(|d| d.name() == *name).unwrap();
            doc.rules().any(|(_, r)| r.allow_write())
        })
        .count();
    eprintln!("5-group caller: {writers} of {scopes_five} scopes have allow_write rules");
    assert!(
        policy
            .decide(&five, &srv5, "tools/call", Some(&tool5))
            .allowed
    );
    assert!(
        !policy
            .decide(&five, &srv5, "tools/call", Some("not_a_tool"))
            .allowed
    );
    assert!(
        !policy
            .decide(&five, "unknown-server", "tools/list", None)
            .allowed
    );

    let mut g = c.benchmark_group("decide");
    g.bench_function("allowed_tools_call_5_groups", |b| {
        b.iter(|| {
            policy.decide(
                black_box(&five),
                black_box(&srv5),
                black_box("tools/call"),
                black_box(Some(tool5.as_str())),
            )
        })
    });
    g.bench_function("allowed_first_scope_no_write_5_groups", |b| {
        b.iter(|| {
            policy.decide(
                black_box(&five),
                black_box(&srv_first),
                black_box("tools/call"),
                black_box(Some(tool_first.as_str())),
            )
        })
    });
    g.bench_function("allowed_tools_call_1_group", |b| {
        b.iter(|| {
            policy.decide(
                black_box(&one),
                black_box(&srv1),
                black_box("tools/call"),
                black_box(Some(tool1.as_str())),
            )
        })
    });
    g.bench_function("allowed_method_5_groups", |b| {
        b.iter(|| {
            policy.decide(
                black_box(&five),
                black_box(&srv5),
                black_box("tools/list"),
                black_box(None),
            )
        })
    });
    g.bench_function("denied_tool_5_groups", |b| {
        b.iter(|| {
            policy.decide(
                black_box(&five),
                black_box(&srv5),
                black_box("tools/call"),
                black_box(Some("srv_9999_tool_99")),
            )
        })
    });
    g.bench_function("denied_server_5_groups", |b| {
        b.iter(|| {
            policy.decide(
                black_box(&five),
                black_box("unknown-server"),
                black_box("tools/list"),
                black_box(None),
            )
        })
    });
    g.bench_function("denied_unknown_group", |b| {
        let nobody = identity(&[]);
        let nobody = Identity::new(vec!["contractors".into()], nobody.scopes);
        b.iter(|| {
            policy.decide(
                black_box(&nobody),
                black_box(&srv5),
                black_box("tools/list"),
                black_box(None),
            )
        })
    });
    g.finish();

    // tools/list filtering: 50 tools of a server, some granted.
    let listed: Vec<String> = {
        let s: usize = srv5.trim_start_matches("srv-").parse().unwrap();
        (0..TOOLS_PER_SERVER).map(|t| tool(s, t)).collect()
    };
    let allowed = policy
        .allowed_tools(&five, &srv5, listed.iter().map(String::as_str))
        .len();
    let writable = {
        let caller = policy.caller(&five);
        let filter = caller.tool_filter(&srv5);
        listed.iter().filter(|t| filter.allows_write(t)).count()
    };
    eprintln!(
        "allowed_tools: {allowed} of {} tools kept, {writable} of them writable",
        listed.len()
    );
    c.bench_function("allowed_tools_50_of_a_server_5_groups", |b| {
        b.iter(|| {
            policy.allowed_tools(
                black_box(&five),
                black_box(&srv5),
                black_box(listed.iter().map(String::as_str)),
            )
        })
    });

    // tools/list filtering on a write-protected server where every other tool is annotated
    // `readOnlyHint: true`: keep the callable tools that are read-only or writable.
    let annotated: Vec<(&str, bool)> = listed
        .iter()
        .enumerate()
        .map(|(t, name)| (name.as_str(), t % 2 == 0))
        .collect();
    c.bench_function("tool_filter_write_protected_50_of_a_server_5_groups", |b| {
        b.iter(|| {
            let caller = policy.caller(black_box(&five));
            let filter = caller.tool_filter(black_box(&srv5));
            black_box(&annotated)
                .iter()
                .filter(|(t, read_only)| filter.allows(t) && (*read_only || filter.allows_write(t)))
                .count()
        })
    });

    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("1000_documents_x_100_rules", |b| {
        b.iter(|| CompiledPolicy::compile(black_box(&docs), 2))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
