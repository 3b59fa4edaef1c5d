//! Nothing acknowledged with a 2xx is lost when the process is killed with SIGKILL.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, Process, server_body};

both_backends!(after_kill_9_every_acknowledged_write_is_still_there);

async fn after_kill_9_every_acknowledged_write_is_still_there(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let env = Process::env_for(backend, dir.path());
    let mut process = Process::start(env.clone(), dir.path());
    process.wait_ready().await;
    let key = std::fs::read_to_string(dir.path().join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    // Written to the file, the key stays out of stderr (the log store of a deployment). The
    // start-up lines follow readiness: wait for the last one.
    for _ in 0..50 {
        if process.stderr().contains("listening on") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !process.stderr().contains(&key),
        "the bootstrap key is not printed when it goes to a file"
    );
    assert!(
        process.stderr().contains("written to"),
        "{}",
        process.stderr()
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Writers register servers and disable every third one they registered, recording only
    // what the registry acknowledged. The process is killed while they are still writing.
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let disabled = Arc::new(Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, key, base) = (client.clone(), key.clone(), process.base.clone());
        let (created, disabled) = (created.clone(), disabled.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                if Instant::now() > deadline + Duration::from_secs(5) {
                    break;
                }
                let path = format!("w{w}-{i}");
                let Ok(r) = client
                    .post(format!("{base}/api/v1/servers"))
                    .bearer_auth(&key)
                    .json(&server_body(&path))
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() != StatusCode::CREATED {
                    break;
                }
                created.lock().unwrap().push(path.clone());
                if i % 3 == 0 {
                    let Ok(r) = client
                        .post(format!("{base}/api/v1/servers/{path}/toggle"))
                        .bearer_auth(&key)
                        .json(&json!({"enabled": false}))
                        .send()
                        .await
                    else {
                        break;
                    };
                    if r.status() == StatusCode::OK {
                        disabled.lock().unwrap().push(path);
                    } else {
                        break;
                    }
                }
            }
        }));
    }
    tokio::time::sleep_until((deadline).into()).await;
    process.kill9().await;
    for w in writers {
        let _ = w.await;
    }
    let created = created.lock().unwrap().clone();
    let disabled = disabled.lock().unwrap().clone();
    assert!(
        created.len() >= 20,
        "too few writes acknowledged before the kill to prove anything: {}",
        created.len()
    );

    let mut again = Process::start(env, dir.path());
    again.wait_ready().await;
    let mut stored = std::collections::BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{}/api/v1/servers?limit=200&cursor={c}", again.base),
            None => format!("{}/api/v1/servers?limit=200", again.base),
        };
        let page: serde_json::Value = client
            .get(url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for s in page["items"].as_array().unwrap() {
            stored.insert(
                s["path"].as_str().unwrap().to_owned(),
                s["enabled"].as_bool().unwrap(),
            );
        }
        match page.get("next_cursor").and_then(|c| c.as_str()) {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let lost: Vec<&String> = created
        .iter()
        .filter(|p| !stored.contains_key(*p))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged registrations lost after kill -9: {lost:?}",
        lost.len()
    );
    let reverted: Vec<&String> = disabled.iter().filter(|p| stored[*p]).collect();
    assert!(
        reverted.is_empty(),
        "acknowledged toggles lost: {reverted:?}"
    );
    // Every acknowledged write left its audit record too (same transaction).
    let audit: serde_json::Value = client
        .get(format!(
            "{}/api/v1/audit?action=server.create&limit=500",
            again.base
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audited: std::collections::BTreeSet<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["resource_id"].as_str().unwrap())
        .collect();
    if created.len() < 500 {
        for p in &created {
            assert!(
                audited.contains(p.as_str()),
                "no audit record for acknowledged {p}"
            );
        }
    }
    eprintln!(
        "{backend:?}: {} registrations and {} toggles acknowledged before kill -9; all present after restart",
        created.len(),
        disabled.len()
    );
    again.kill9().await;
}
