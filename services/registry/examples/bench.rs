//! Load generator for the registry's REST API (issue 2: "register 1,000 servers, then list and
//! filter at concurrency 50").
//!
//! Phase 1 registers `--servers` servers with `POST /api/v1/servers`; phase 2 runs a fixed
//! number of list, filter and read requests per scenario. Every request must answer 2xx: a
//! benchmark that silently measures error pages would flatter the numbers, so any failure
//! makes the run exit non-zero. Results go to stdout as a Markdown table, progress to stderr.
//!
//! Run against a fresh registry (an empty store): the paths `bench-00001`… must be free.
//! `scripts/bench-registry.sh` starts one per backend and runs this for you:
//!
//! ```text
//! cargo run --release -p registry --example bench -- --url http://127.0.0.1:7860 --key mcpgw_…
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Benchmark the registry: register servers, then list and filter them")]
struct Args {
    /// Base URL of the registry.
    #[arg(long, default_value = "http://127.0.0.1:7860")]
    url: String,
    /// An admin API key (also read from MCPGW_BENCH_KEY, which keeps it out of `ps`).
    #[arg(long, env = "MCPGW_BENCH_KEY", hide_env_values = true)]
    key: String,
    /// How many servers to register.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=99_999))]
    servers: u32,
    /// Requests in flight at once, in both phases.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    concurrency: u32,
    /// Requests per list scenario (the paginated walk rounds this to whole walks).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// Page size of the paginated walk.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
    page_size: u32,
    /// A name for this run (e.g. the backend), printed above the table.
    #[arg(long, default_value = "registry")]
    label: String,
    /// Give up (and fail) if the whole run takes longer than this.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
}

/// Shared by every request: the client and where to send it.
struct Target {
    client: reqwest::Client,
    base: String,
    key: String,
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: usize,
    /// The first few failures, verbatim, so a failed run says why.
    samples: Vec<String>,
}

impl Tally {
    fn record(&mut self, started: Instant, outcome: anyhow::Result<()>) {
        self.latencies.push(started.elapsed());
        if let Err(e) = outcome {
            self.errors += 1;
            if self.samples.len() < 3 {
                self.samples.push(format!("{e:#}"));
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        for s in other.samples {
            if self.samples.len() < 3 {
                self.samples.push(s);
            }
        }
    }
}

/// One row of the results table.
struct Row {
    scenario: String,
    tally: Tally,
    wall: Duration,
}

impl Row {
    fn new(scenario: impl Into<String>, mut tally: Tally, wall: Duration) -> Self {
        tally.latencies.sort_unstable();
        Self {
            scenario: scenario.into(),
            tally,
            wall,
        }
    }

    /// Nearest-rank percentile (no interpolation: every value reported was really observed).
    fn percentile_ms(&self, p: f64) -> f64 {
        let sorted = &self.tally.latencies;
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        ms(sorted[rank.clamp(1, sorted.len()) - 1])
    }

    fn requests_per_second(&self) -> f64 {
        self.tally.latencies.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            self.scenario,
            self.tally.latencies.len(),
            self.tally.errors,
            self.wall.as_secs_f64(),
            self.requests_per_second(),
            self.percentile_ms(50.0),
            self.percentile_ms(90.0),
            self.percentile_ms(99.0),
            self.percentile_ms(100.0),
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The part of a list response the benchmark checks.
#[derive(Deserialize)]
struct Page {
    items: Vec<Item>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    path: String,
}

fn server_path(i: u32) -> String {
    format!("bench-{i:05}")
}

/// Ten teams, so `team-3` owns a tenth of the servers.
fn team(i: u32) -> String {
    format!("team-{}", i % 10)
}

/// A registration body. The description deliberately avoids the text of the `q=` scenario, so
/// that scenario's expected matches are exactly the names "Bench 42" and "Bench 420".."429".
fn registration(i: u32) -> serde_json::Value {
    json!({
        "path": server_path(i),
        "name": format!("Bench {i}"),
        "description": "Synthetic server registered by the registry benchmark.",
        "tags": ["bench", team(i)],
        "endpoint": {"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"},
        "governance": {"owner_team": team(i), "environment": "prod"},
    })
}

impl Target {
    fn get(&self, path_and_query: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.key)
    }

    /// Sends a request and reads the whole body (the transfer is part of the latency);
    /// anything but 2xx is an error carrying the start of the body.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<impl AsRef<[u8]>> {
        let response = request.send().await.context("sending")?;
        let status = response.status();
        let body = response.bytes().await.context("reading the body")?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            bail!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
        Ok(body)
    }

    async fn get_page(&self, path_and_query: &str) -> anyhow::Result<Page> {
        let body = self.send(self.get(path_and_query)).await?;
        serde_json::from_slice(body.as_ref()).context("parsing a list response")
    }
}

/// Runs `total` jobs on `concurrency` workers; job `n` (0-based) is `job(n)`. Each job is
/// timed and recorded. Workers draw job numbers from one counter, so the count is exact and
/// a slow worker does not hold back the others.
async fn run_jobs<F, Fut>(total: usize, concurrency: usize, job: F) -> (Tally, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.min(total) {
        let (job, next) = (job.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let t = Instant::now();
                let outcome = job(n).await;
                tally.record(t, outcome);
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for w in workers {
        match w.await {
            Ok(t) => tally.merge(t),
            Err(e) => {
                tally.errors += 1;
                tally.samples.push(format!("a worker panicked: {e}"));
            }
        }
    }
    (tally, started.elapsed())
}

/// A list scenario: a query, and how many items its first page must hold.
struct ListScenario {
    name: &'static str,
    query: String,
    expect_items: usize,
}

fn list_scenarios(servers: u32) -> Vec<ListScenario> {
    let n = servers as usize;
    // Servers 1..=n; team(i) = i % 10, so team-3 has i = 3, 13, 23, …
    let team3 = (1..=servers).filter(|i| i % 10 == 3).count();
    let q42 = (1..=servers)
        .filter(|i| format!("bench {i}").contains("bench 42"))
        .count();
    vec![
        ListScenario {
            name: "list first page (limit=50)",
            query: "?limit=50".into(),
            expect_items: n.min(50),
        },
        ListScenario {
            name: "filter tag=team-3",
            query: "?tag=team-3".into(),
            expect_items: team3.min(50),
        },
        ListScenario {
            name: "filter owner=team-3",
            query: "?owner=team-3".into(),
            expect_items: team3.min(50),
        },
        ListScenario {
            name: "filter enabled+lifecycle=draft+environment=prod",
            query: "?enabled=true&lifecycle=draft&environment=prod".into(),
            expect_items: n.min(50),
        },
        ListScenario {
            name: "search q=bench 42",
            query: "?q=bench%2042".into(),
            expect_items: q42.min(50),
        },
    ]
}

async fn register(target: &Arc<Target>, args: &Args) -> Row {
    let t = target.clone();
    let (tally, wall) = run_jobs(args.servers as usize, args.concurrency as usize, move |n| {
        let t = t.clone();
        async move {
            let request = t
                .client
                .post(format!("{}/api/v1/servers", t.base))
                .bearer_auth(&t.key)
                .json(&registration(n as u32 + 1));
            t.send(request).await.map(drop)
        }
    })
    .await;
    Row::new(format!("register {} servers", args.servers), tally, wall)
}

/// Checks a scenario's answer once, untimed, before measuring it: fast wrong answers are
/// not a result. This also warms caches and connections equally for every scenario.
async fn check_list(target: &Target, s: &ListScenario) -> anyhow::Result<()> {
    let page = target
        .get_page(&format!("/api/v1/servers{}", s.query))
        .await
        .with_context(|| s.name)?;
    ensure!(
        page.items.len() == s.expect_items,
        "{}: expected {} items on the first page, got {}",
        s.name,
        s.expect_items,
        page.items.len()
    );
    Ok(())
}

async fn list(target: &Arc<Target>, args: &Args, s: &ListScenario) -> anyhow::Result<Row> {
    check_list(target, s).await?;
    let t = target.clone();
    let url = format!("/api/v1/servers{}", s.query);
    let (tally, wall) = run_jobs(
        args.requests as usize,
        args.concurrency as usize,
        move |_| {
            let (t, url) = (t.clone(), url.clone());
            async move { t.send(t.get(&url)).await.map(drop) }
        },
    )
    .await;
    Ok(Row::new(s.name, tally, wall))
}

/// Follows `next_cursor` from the first page to the last; returns the paths seen and the
/// latency of each page. Bounded by `max_pages` in case the cursor never ends.
async fn walk(
    target: &Target,
    page_size: u32,
    max_pages: usize,
) -> anyhow::Result<(usize, Vec<Duration>)> {
    let mut seen = 0;
    let mut latencies = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..max_pages {
        let query = match &cursor {
            None => format!("/api/v1/servers?limit={page_size}"),
            Some(c) => format!("/api/v1/servers?limit={page_size}&cursor={c}"),
        };
        let t = Instant::now();
        let page = target.get_page(&query).await?;
        latencies.push(t.elapsed());
        seen += page
            .items
            .iter()
            .filter(|i| i.path.starts_with("bench-"))
            .count();
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok((seen, latencies));
        }
    }
    bail!("the walk did not end within {max_pages} pages")
}

/// The paginated walk: whole walks run concurrently; the table gets one row per page request
/// and one row per complete walk (the time to enumerate the catalog).
async fn walks(target: &Arc<Target>, args: &Args) -> (Row, Row) {
    let pages_per_walk = args.servers.div_ceil(args.page_size).max(1) as usize;
    let total_walks = (args.requests as usize / pages_per_walk).max(1);
    // A few pages of slack: other servers may exist; a walk that never ends is a bug.
    let max_pages = pages_per_walk + 10;
    let expected = args.servers as usize;
    let pages = Arc::new(std::sync::Mutex::new(Tally::default()));
    let (t, sink) = (target.clone(), pages.clone());
    let page_size = args.page_size;
    let (walk_tally, wall) = run_jobs(total_walks, args.concurrency as usize, move |_| {
        let (t, sink) = (t.clone(), sink.clone());
        async move {
            let outcome = walk(&t, page_size, max_pages).await;
            let mut pages = sink.lock().unwrap_or_else(|p| p.into_inner());
            match outcome {
                Ok((seen, latencies)) => {
                    pages.latencies.extend(latencies);
                    ensure!(
                        seen == expected,
                        "a walk saw {seen} bench servers, expected {expected}"
                    );
                    Ok(())
                }
                Err(e) => {
                    pages.errors += 1;
                    Err(e)
                }
            }
        }
    })
    .await;
    let pages = std::mem::take(&mut *pages.lock().unwrap_or_else(|p| p.into_inner()));
    (
        Row::new(
            format!("paginated walk, per page (limit={})", args.page_size),
            pages,
            wall,
        ),
        Row::new(
            format!("paginated walk, whole ({pages_per_walk} pages)"),
            walk_tally,
            wall,
        ),
    )
}

async fn get_one(target: &Arc<Target>, args: &Args) -> anyhow::Result<Row> {
    target
        .send(target.get(&format!("/api/v1/servers/{}", server_path(1))))
        .await
        .context("GET /api/v1/servers/{path}")?;
    let t = target.clone();
    let servers = args.servers as usize;
    let (tally, wall) = run_jobs(
        args.requests as usize,
        args.concurrency as usize,
        move |n| {
            let t = t.clone();
            // Stride through the catalog (7919 is prime) rather than hammering one row.
            let path = server_path((n * 7919 % servers) as u32 + 1);
            async move {
                t.send(t.get(&format!("/api/v1/servers/{path}")))
                    .await
                    .map(drop)
            }
        },
    )
    .await;
    Ok(Row::new("get one server by path", tally, wall))
}

async fn run(args: Args) -> anyhow::Result<Vec<Row>> {
    let concurrency = args.concurrency as usize;
    let target = Arc::new(Target {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?,
        base: args.url.trim_end_matches('/').to_owned(),
        key: args.key.clone(),
    });
    let health = target
        .send(target.client.get(format!("{}/health", target.base)))
        .await;
    health.with_context(|| format!("{} does not answer /health", target.base))?;

    let mut rows = Vec::new();
    eprintln!(
        "[{}] phase 1: registering {} servers at concurrency {concurrency}",
        args.label, args.servers
    );
    let row = register(&target, &args).await;
    let failed = row.tally.errors > 0;
    eprintln!("{}", row.markdown());
    rows.push(row);
    if failed {
        // Listing a half-registered catalog would measure the wrong thing.
        return Ok(rows);
    }

    eprintln!(
        "[{}] phase 2: {} requests per scenario at concurrency {concurrency}",
        args.label, args.requests
    );
    // Progress: each row goes to stderr as soon as it is measured.
    let mut keep = |row: Row| {
        eprintln!("{}", row.markdown());
        rows.push(row);
    };
    let scenarios = list_scenarios(args.servers);
    keep(list(&target, &args, &scenarios[0]).await?);
    let (per_page, whole) = walks(&target, &args).await;
    keep(per_page);
    keep(whole);
    for s in &scenarios[1..] {
        keep(list(&target, &args, s).await?);
    }
    keep(get_one(&target, &args).await?);
    Ok(rows)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let label = args.label.clone();
    let (servers, concurrency, requests) = (args.servers, args.concurrency, args.requests);
    let limit = Duration::from_secs(args.timeout_secs);
    let rows = match tokio::time::timeout(limit, run(args)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            eprintln!("bench [{label}] FAILED: {e:#}");
            return ExitCode::FAILURE;
        }
        Err(_) => {
            eprintln!("bench [{label}] FAILED: did not finish within {limit:?}");
            return ExitCode::FAILURE;
        }
    };

    println!(
        "**{label}**: {servers} servers, concurrency {concurrency}, {requests} requests per \
         list scenario. Latencies in ms.\n"
    );
    println!("| scenario | requests | errors | wall s | req/s | p50 | p90 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!("{}", row.markdown());
    }
    println!();

    let failures: Vec<&Row> = rows.iter().filter(|r| r.tally.errors > 0).collect();
    if failures.is_empty() {
        return ExitCode::SUCCESS;
    }
    for r in failures {
        eprintln!(
            "bench [{label}] FAILED: {} had {} errors; first: {}",
            r.scenario,
            r.tally.errors,
            r.tally.samples.join(" | ")
        );
    }
    ExitCode::FAILURE
}
