//! In-process measurements of the search index, for `scripts/bench-search.sh` and for tuning.
//!
//!   search_bench costs <catalog.json> <queries.txt>
//!       building the index, one incremental update (a server and its tools re-indexed, as after
//!       a write), one query; prints one JSON object.
//!   search_bench quality <catalog.json> <search-queries.json> [name title desc tags params server k1]
//!       NDCG@10, MRR and Recall@10 of the labelled queries with the given field weights (default:
//!       the built-in ones), the same computation as the `search_quality` integration test but
//!       without HTTP, so that weights can be compared quickly.
//!
//! `catalog.json` holds registration bodies, each with a `tools` array. Records are made the way
//! the registry makes them (spec and tool validation) and indexed through the registry's own
//! `CatalogSearch`.

use std::collections::HashMap;
use std::time::Instant;

use mcpgw_core::auth::Principal;
use mcpgw_core::domain::tool::validate_tools;
use mcpgw_core::domain::{ServerRecord, ServerSpec, ToolSpec};
use mcpgw_core::search::Weights;
use mcpgw_core::secrets::Keyring;
use registry::search::{CatalogSearch, SearchRequest};
use serde_json::{Value, json};

fn records(path: &str) -> anyhow::Result<Vec<ServerRecord>> {
    let catalog: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let keyring = Keyring::from_base64(&Keyring::generate_base64(), &[])?;
    let mut out = Vec::with_capacity(catalog.len());
    for mut body in catalog {
        let tools: Vec<ToolSpec> = serde_json::from_value(body["tools"].take())?;
        let obj = body.as_object_mut().expect("an object");
        obj.remove("tools");
        obj.entry("endpoint").or_insert_with(
            || json!({"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"}),
        );
        obj.entry("governance")
            .or_insert_with(|| json!({"owner_team": "bench"}));
        let spec: ServerSpec = serde_json::from_value(body)?;
        let mut record = ServerRecord::create(spec.validate()?, &keyring, "bench", true)?;
        record.tools = validate_tools("tools", tools)?;
        out.push(record);
    }
    Ok(out)
}

fn ask(index: &CatalogSearch, query: &str, extra: Value) -> anyhow::Result<Vec<String>> {
    let mut body = json!({"query": query, "limit": 10});
    body.as_object_mut()
        .expect("an object")
        .extend(extra.as_object().cloned().unwrap_or_default());
    let req: SearchRequest = serde_json::from_value(body)?;
    let answer = index.answer(&Principal::system("bench"), None, &req)?;
    Ok(answer
        .results
        .iter()
        .map(|r| format!("{}/{}", r.server, r.name))
        .collect())
}

fn costs(catalog: &str, queries: &str) -> anyhow::Result<Value> {
    let records = records(catalog)?;
    let queries: Vec<String> = std::fs::read_to_string(queries)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let index = CatalogSearch::new(None);
    let started = Instant::now();
    for r in &records {
        index.server_changed(r);
    }
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let rounds = 2000;
    let started = Instant::now();
    for i in 0..rounds {
        let mut r = records[i % records.len()].clone();
        r.revision += 1;
        r.description = format!("{} (revision {})", r.description, r.revision);
        index.server_changed(&r);
    }
    let update_us = started.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let rounds = queries.len().max(1) * 20;
    let started = Instant::now();
    let mut empty = 0;
    for i in 0..rounds {
        empty += usize::from(ask(&index, &queries[i % queries.len()], json!({}))?.is_empty());
    }
    let query_us = started.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    Ok(json!({
        "servers": records.len(), "documents": index.len(), "build_ms": build_ms,
        "update_us": update_us, "update_tools": records[0].tools.len(),
        "query_us": query_us, "queries": rounds, "empty_answers": empty,
    }))
}

fn quality(catalog: &str, labelled: &str, weights: &[String]) -> anyhow::Result<Value> {
    let mut w = Weights::default();
    for (i, v) in weights.iter().enumerate() {
        let v: f32 = v.parse()?;
        if i < w.field.len() {
            w.field[i] = v;
        } else {
            w.k1 = v;
        }
    }
    let index = CatalogSearch::with_weights(None, w.clone());
    for r in records(catalog)? {
        index.server_changed(&r);
    }
    let labelled: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(labelled)?)?;
    let (mut ndcg, mut mrr, mut recall) = (0.0, 0.0, 0.0);
    let dcg = |gains: &mut dyn Iterator<Item = u64>| -> f64 {
        gains
            .enumerate()
            .map(|(i, g)| (2f64.powi(g as i32) - 1.0) / ((i + 2) as f64).log2())
            .sum()
    };
    for q in &labelled {
        let relevant: HashMap<String, u64> = serde_json::from_value(q["relevant"].clone())?;
        let got = ask(
            &index,
            q["query"].as_str().unwrap_or(""),
            json!({"kinds": ["tool"]}),
        )?;
        let grade = |id: &String| relevant.get(id).copied().unwrap_or(0);
        let mut ideal: Vec<u64> = relevant.values().copied().collect();
        ideal.sort_unstable_by(|a, b| b.cmp(a));
        ndcg += dcg(&mut got.iter().map(grade)) / dcg(&mut ideal.into_iter().take(10));
        mrr += got
            .iter()
            .position(|id| grade(id) > 0)
            .map_or(0.0, |p| 1.0 / (p + 1) as f64);
        recall +=
            got.iter().filter(|id| grade(id) > 0).count() as f64 / relevant.len().min(10) as f64;
    }
    let n = labelled.len() as f64;
    Ok(json!({"weights": format!("{:?} k1={}", w.field, w.k1),
              "ndcg_at_10": ndcg / n, "mrr": mrr / n, "recall_at_10": recall / n}))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = match args.get(1).map(String::as_str) {
        Some("costs") if args.len() == 4 => costs(&args[2], &args[3])?,
        Some("quality") if args.len() >= 4 => quality(&args[2], &args[3], &args[4..])?,
        _ => anyhow::bail!(
            "usage: search_bench costs <catalog.json> <queries.txt> | quality <catalog.json> <queries.json> [weights…]"
        ),
    };
    println!("{out}");
    Ok(())
}
