//! Step 2: wait until every public endpoint resolves in DNS and answers HTTP(S) (any answer
//! below 500: the services behind the load balancer are up, whatever they say to an
//! anonymous request). Bounded by `--wait-endpoints`.

use std::time::Duration;

use crate::error::Result;
use crate::wait::{Attempt, until};
use crate::{Context, Outcome};

/// Why `url` is not ready, or `None` when it answers.
async fn check(http: &reqwest::Client, url: &url::Url) -> Option<String> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(443);
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            if addrs.count() == 0 {
                return Some(format!("{host} has no address yet"));
            }
        }
        Err(e) => return Some(format!("{host} does not resolve yet ({e})")),
    }
    match http
        .get(url.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) if r.status().is_server_error() => Some(format!("{url} answers {}", r.status())),
        Ok(_) => None,
        Err(e) => Some(format!(
            "{url}: {}",
            crate::error::error_chain(&e)
                .rsplit(": ")
                .next()
                .unwrap_or("no answer")
        )),
    }
}

pub async fn run(ctx: &mut Context) -> Result<Outcome> {
    let endpoints: Vec<(String, url::Url)> = ctx
        .inputs
        .endpoints()
        .into_iter()
        .map(|(n, u)| (n.to_owned(), u.clone()))
        .collect();
    if endpoints.is_empty() {
        return Ok(Outcome::note("no endpoint URLs given; nothing to wait for"));
    }
    let http = ctx.http.clone();
    until(
        &ctx.out,
        "the endpoints",
        ctx.inputs.wait_endpoints,
        Duration::from_secs(2),
        || {
            let (http, endpoints) = (http.clone(), endpoints.clone());
            async move {
                let mut reasons = Vec::new();
                for (_, url) in &endpoints {
                    if let Some(why) = check(&http, url).await {
                        reasons.push(why);
                    }
                }
                if reasons.is_empty() {
                    Attempt::Ready(())
                } else {
                    Attempt::NotYet(reasons.join("; "))
                }
            }
        },
    )
    .await
    .map_err(|e| e.with_hint("check the DNS records and the load balancer's target health; raise --wait-endpoints if the deployment is still starting, or --skip endpoints"))?;
    Ok(Outcome::note(format!(
        "all {} answer: {}",
        endpoints.len(),
        endpoints
            .iter()
            .map(|(_, u)| u.as_str().trim_end_matches('/'))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}
