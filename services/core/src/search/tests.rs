use std::sync::Arc;

use super::tokenize::{terms, words};
use super::*;

fn tool(server: &str, name: &str, description: &str) -> Document<()> {
    Document {
        id: format!("tool:{server}/{name}"),
        kind: DocKind::Tool,
        server: server.to_owned(),
        server_name: server.to_owned(),
        name: name.to_owned(),
        title: None,
        description: description.to_owned(),
        tags: vec![],
        params: vec![],
        lifecycle: Lifecycle::ApprovedProd,
        enabled: true,
        payload: (),
    }
}

fn ids(r: &Results<()>) -> Vec<&str> {
    r.hits.iter().map(|h| h.doc.id.as_str()).collect()
}

fn all(_: &Document<()>) -> bool {
    true
}

#[test]
fn identifiers_split_at_every_separator_and_case_change() {
    assert_eq!(words("get_forecast"), ["get", "forecast"]);
    assert_eq!(words("listPullRequests"), ["list", "pull", "requests"]);
    assert_eq!(words("getHTTPStatus"), ["get", "http", "status"]);
    assert_eq!(
        words("aws.s3-list_buckets"),
        ["aws", "s3", "list", "buckets"]
    );
    assert_eq!(words("Résumé/EC2"), ["resume", "ec2"]);
}

#[test]
fn terms_drop_stopwords_and_stem() {
    assert_eq!(
        terms("I need to find the weather forecasts for Paris"),
        ["find", "weather", "forecast", "pari"]
    );
    assert_eq!(terms("running queries"), terms("run query"));
    // Single letters are noise, single digits are not.
    assert_eq!(terms("a b 3 x"), ["3"]);
}

#[test]
fn a_document_matching_rarer_terms_ranks_higher() {
    let mut index = SearchIndex::default();
    for i in 0..20 {
        index
            .upsert(tool("misc", &format!("list_things_{i}"), "List things"))
            .unwrap();
    }
    index.upsert(tool("a", "one", "list invoices")).unwrap();
    index.upsert(tool("b", "two", "list things")).unwrap();
    let r = index.search("list invoices", &Filter::default(), 5, &all);
    assert_eq!(r.hits[0].doc.id, "tool:a/one", "{:?}", ids(&r));
    assert!(r.hits[0].score > r.hits[1].score);
}

#[test]
fn the_name_weighs_more_than_the_description() {
    let mut index = SearchIndex::default();
    index
        .upsert(tool("x", "create_invoice", "Makes a billing document"))
        .unwrap();
    index
        .upsert(tool("y", "make_document", "Creates an invoice"))
        .unwrap();
    let r = index.search("create invoice", &Filter::default(), 5, &all);
    assert_eq!(ids(&r), ["tool:x/create_invoice", "tool:y/make_document"]);
}

#[test]
fn upsert_and_remove_change_results_at_once() {
    let mut index = SearchIndex::default();
    index
        .upsert(tool("w", "forecast", "Weather forecast"))
        .unwrap();
    index
        .upsert(tool("m", "route", "Driving directions"))
        .unwrap();
    let q = |i: &SearchIndex<()>, text| {
        i.search(text, &Filter::default(), 10, &all)
            .hits
            .iter()
            .map(|h| h.doc.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(q(&index, "weather"), ["tool:w/forecast"]);
    // Replacing a document replaces its text: the old words no longer find it.
    index.upsert(tool("w", "forecast", "Tide tables")).unwrap();
    assert!(q(&index, "weather").is_empty());
    assert_eq!(q(&index, "tides"), ["tool:w/forecast"]);
    assert_eq!(index.len(), 2);
    assert!(index.remove("tool:w/forecast"));
    assert!(q(&index, "tides").is_empty());
    assert!(!index.remove("tool:w/forecast"));
    assert_eq!(index.len(), 1);
    // Removing every document leaves no postings behind.
    index.remove("tool:m/route");
    assert_eq!(index.term_count(), 0);
}

#[test]
fn filters_and_visibility_apply_before_the_limit() {
    let mut index = SearchIndex::default();
    for (i, server) in ["a", "b", "c"].iter().enumerate() {
        let mut d = tool(server, "search_logs", "Search the logs");
        d.tags = vec![format!("team{i}"), "ops".into()];
        d.lifecycle = if i == 2 {
            Lifecycle::Retired
        } else {
            Lifecycle::ApprovedDev
        };
        index.upsert(d).unwrap();
    }
    let mut server = tool("a", "logs", "Log server");
    server.kind = DocKind::Server;
    server.id = "server:a".into();
    index.upsert(server).unwrap();

    let count = |index: &SearchIndex<()>, f: Filter| index.search("logs", &f, 10, &all).hits.len();
    let only = |f: Filter| count(&index, f);
    assert_eq!(only(Filter::default()), 4);
    let kinds = Filter {
        kinds: vec![DocKind::Server],
        ..Default::default()
    };
    assert_eq!(ids(&index.search("logs", &kinds, 10, &all)), ["server:a"]);
    let tags = Filter {
        tags: vec!["OPS".into(), "team1".into()],
        ..Default::default()
    };
    assert_eq!(
        ids(&index.search("logs", &tags, 10, &all)),
        ["tool:b/search_logs"]
    );
    let lifecycle = Filter {
        lifecycle: vec![Lifecycle::Retired],
        ..Default::default()
    };
    assert_eq!(only(lifecycle), 1);
    let server = Filter {
        server: Some("a".into()),
        ..Default::default()
    };
    assert_eq!(only(server), 2);
    // A hidden best match does not shorten the page.
    let hide_a = |d: &Document<()>| d.server != "a";
    let r = index.search("logs", &Filter::default(), 2, &hide_a);
    assert_eq!(r.hits.len(), 2);
    assert!(r.hits.iter().all(|h| h.doc.server != "a"));
    // Disabled documents are left out unless asked for.
    let mut off = tool("d", "search_logs", "Search the logs");
    off.enabled = false;
    index.upsert(off).unwrap();
    assert_eq!(count(&index, Filter::default()), 4);
    let with_disabled = Filter {
        include_disabled: true,
        ..Default::default()
    };
    assert_eq!(count(&index, with_disabled), 5);
}

#[test]
fn ties_are_ordered_by_id() {
    let mut index = SearchIndex::default();
    for server in ["c", "a", "b"] {
        index.upsert(tool(server, "ping", "Ping")).unwrap();
    }
    let r = index.search("ping", &Filter::default(), 10, &all);
    assert_eq!(ids(&r), ["tool:a/ping", "tool:b/ping", "tool:c/ping"]);
    assert_eq!(r.hits.iter().map(|h| h.rank).collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn rrf_sums_reciprocal_ranks() {
    let fused = reciprocal_rank_fusion(&[&["a", "b"], &["b", "c"]], RRF_K);
    assert!((fused["a"] - 1.0 / 61.0).abs() < 1e-12);
    assert!((fused["b"] - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-12);
    assert!((fused["c"] - 1.0 / 62.0).abs() < 1e-12);
}

/// A deterministic test embedder (a stand-in for a sentence-embedding model, which cannot run
/// in a unit test): one dimension per concept, a word counts toward every concept it names.
struct ConceptEmbedder;

const CONCEPTS: &[&[&str]] = &[
    &["weather", "forecast", "rain", "umbrella", "temperature"],
    &["money", "invoice", "payment", "refund", "charge"],
    &["code", "repository", "commit", "pull"],
];

impl Embedder for ConceptEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let words = words(t);
                CONCEPTS
                    .iter()
                    .map(|c| words.iter().filter(|w| c.contains(&w.as_str())).count() as f32)
                    .collect()
            })
            .collect())
    }
}

#[test]
fn hybrid_search_fuses_lexical_and_semantic_rankings() {
    let mut index: SearchIndex<()> =
        SearchIndex::new(Weights::default(), Some(Arc::new(ConceptEmbedder)));
    assert_eq!(index.mode(), Mode::Hybrid);
    index
        .upsert_many(vec![
            tool("w", "get_forecast", "Weather forecast for a city"),
            tool("p", "refund_charge", "Refund a payment"),
            tool("g", "umbrella_stand", "Inventory of office furniture"),
        ])
        .unwrap();
    // "umbrella" matches only g lexically; semantically it is about the weather, like g and w
    // (equal cosines, ordered by id: g, w). Fusion: g is first in both legs, w is found through
    // the semantic leg alone although it shares no word with the query.
    let r = index.search("umbrella", &Filter::default(), 10, &all);
    assert_eq!(r.mode, Mode::Hybrid);
    assert_eq!(ids(&r), ["tool:g/umbrella_stand", "tool:w/get_forecast"]);
    assert!((r.hits[0].score - 2.0 / 61.0).abs() < 1e-9);
    assert!((r.hits[1].score - 1.0 / 62.0).abs() < 1e-9);
    // Found by both legs (first lexically, second semantically) beats first in one leg only.
    let r = index.search("weather forecast", &Filter::default(), 10, &all);
    assert_eq!(ids(&r), ["tool:w/get_forecast", "tool:g/umbrella_stand"]);
    assert!((r.hits[0].score - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-9);
    assert!((r.hits[1].score - 1.0 / 61.0).abs() < 1e-9);
    // Without an embedder the same index is lexical only.
    let mut lexical = SearchIndex::default();
    lexical
        .upsert(tool("w", "get_forecast", "Weather forecast for a city"))
        .unwrap();
    let r = lexical.search("umbrella", &Filter::default(), 10, &all);
    assert_eq!(r.mode, Mode::Lexical);
    assert!(r.hits.is_empty());
}
