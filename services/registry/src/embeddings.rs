//! The embedding provider of search's optional semantic leg (`[search.embeddings]`).
//!
//! One provider kind covers most of what deployments run: the OpenAI embeddings wire format,
//! `POST {base_url}/embeddings` with `{"model", "input": [...]}` answered by
//! `{"data": [{"index", "embedding": [...]}, ...]}` (OpenAI, LiteLLM, Ollama's `/v1`, Hugging
//! Face TEI, Azure or Bedrock behind an OpenAI-compatible proxy).
//!
//! Embedding is I/O, so it never runs under the index lock: documents are embedded in the
//! background in batches (see `search.rs`), and a query is embedded before the index is read,
//! with a short time limit. Vectors are cached by a hash of the embedded text, so unchanged text
//! is never sent twice. The base URL passes the egress policy at start and the client checks
//! every address it connects to. The API key is never logged, nor put in an error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use mcpgw_core::egress::EgressPolicy;
use mcpgw_core::search::EmbedError;
use mcpgw_core::secrets::fetch_from_secrets_manager;
use prometheus::{IntCounterVec, Opts};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::{EmbeddingsProvider, RegistryConfig};

/// Longest text sent for one document, in characters (descriptions can be long; models have a
/// context limit, and the start of a description says what the thing is).
pub const MAX_TEXT_CHARS: usize = 2000;
/// Vectors kept by text hash. Beyond it, entries are dropped arbitrarily: a dropped entry costs
/// one re-embedding if that exact text is indexed again, nothing else.
const CACHE_ENTRIES: usize = 100_000;
/// After a failed query embedding, queries skip the provider this long (answering lexically at
/// once), so a hanging provider costs one `query_timeout_ms`, not one per search.
const QUERY_PAUSE: Duration = Duration::from_secs(5);

/// SHA-256 of an embedded text.
pub type TextHash = [u8; 32];

/// `text` cut to [`MAX_TEXT_CHARS`], as it is embedded and hashed.
pub fn clip(text: &str) -> &str {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

pub fn text_hash(text: &str) -> TextHash {
    Sha256::digest(clip(text).as_bytes()).into()
}

/// The provider, its cache and its counters.
pub struct Embeddings {
    client: reqwest::Client,
    url: url::Url,
    model: String,
    api_key: Option<SecretString>,
    dimensions: usize,
    batch_size: usize,
    timeout: Duration,
    query_timeout: Duration,
    cache: Mutex<HashMap<TextHash, Arc<[f32]>>>,
    /// Until when queries skip the provider, and the failure that started the pause.
    query_pause: Mutex<Option<(Instant, String)>>,
    /// `mcpgw_registry_embedding_requests_total{kind, outcome}`.
    requests: IntCounterVec,
}

impl Embeddings {
    /// The configured provider, or `None` for `provider = "none"`. Refuses a base URL the
    /// egress policy forbids and an API key that cannot be loaded, naming the key.
    pub async fn from_config(config: &RegistryConfig) -> anyhow::Result<Option<Arc<Self>>> {
        let c = &config.search.embeddings;
        if c.provider == EmbeddingsProvider::None {
            return Ok(None);
        }
        let egress = EgressPolicy::new(config.egress);
        let base = egress
            .check_url(&c.base_url)
            .await
            .with_context(|| format!("search.embeddings.base_url {}", c.base_url))?;
        let url = url::Url::parse(&format!(
            "{}/embeddings",
            base.as_str().trim_end_matches('/')
        ))
        .context("search.embeddings.base_url")?;
        let api_key = if !c.api_key.expose_secret().is_empty() {
            Some(c.api_key.clone())
        } else if !c.api_key_file.is_empty() {
            let text = std::fs::read_to_string(&c.api_key_file).with_context(|| {
                format!("reading search.embeddings.api_key_file {}", c.api_key_file)
            })?;
            Some(SecretString::from(text.trim().to_owned()))
        } else if !c.api_key_secret_id.is_empty() {
            Some(
                fetch_from_secrets_manager(&config.secrets.aws, &c.api_key_secret_id, None)
                    .await
                    .context("loading search.embeddings.api_key_secret_id")?,
            )
        } else {
            None
        };
        if api_key.as_ref().is_some_and(|k| {
            k.expose_secret().is_empty()
                || reqwest::header::HeaderValue::from_str(k.expose_secret()).is_err()
        }) {
            anyhow::bail!("search.embeddings.api_key: empty, or not usable in an HTTP header");
        }
        let timeout = Duration::from_millis(c.timeout_ms);
        let requests = IntCounterVec::new(
            Opts::new(
                "mcpgw_registry_embedding_requests_total",
                "Requests to the search embedding provider, by kind (documents, query) and outcome (ok, error, timeout)",
            ),
            &["kind", "outcome"],
        )
        .expect("a valid metric");
        Ok(Some(Arc::new(Self {
            // No redirects, every connected address checked by the egress policy.
            client: crate::mcp_client::http_client(
                Arc::new(egress),
                timeout.min(Duration::from_secs(5)),
            ),
            url,
            model: c.model.clone(),
            api_key,
            dimensions: c.dimensions,
            batch_size: c.batch_size,
            timeout,
            query_timeout: Duration::from_millis(c.query_timeout_ms),
            cache: Mutex::new(HashMap::new()),
            query_pause: Mutex::new(None),
            requests,
        })))
    }

    /// Adds the counters to a metrics registry (the registry's `/metrics`).
    pub fn register_metrics(&self, registry: &prometheus::Registry) {
        let _ = registry.register(Box::new(self.requests.clone()));
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn cached(&self, hash: &TextHash) -> Option<Arc<[f32]>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(hash).cloned()
    }

    fn remember(&self, hash: TextHash, vector: Arc<[f32]>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            let drop: Vec<TextHash> = cache.keys().take(CACHE_ENTRIES / 10).copied().collect();
            for h in drop {
                cache.remove(&h);
            }
        }
        cache.insert(hash, vector);
    }

    /// Embeds documents' texts (one request, `timeout_ms`) and caches the vectors by hash.
    pub async fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Arc<[f32]>>, EmbedError> {
        let vectors = self.request("documents", texts, self.timeout).await?;
        Ok(texts
            .iter()
            .zip(vectors)
            .map(|(text, v)| {
                let v: Arc<[f32]> = v.into();
                self.remember(text_hash(text), v.clone());
                v
            })
            .collect())
    }

    /// Embeds a query within `query_timeout_ms`, unless a recent failure paused that.
    pub async fn embed_query(&self, query: &str) -> Result<Vec<f32>, EmbedError> {
        if let Some((until, why)) = &*self.query_pause.lock().unwrap_or_else(|e| e.into_inner())
            && Instant::now() < *until
        {
            return Err(EmbedError(format!(
                "{why}; paused for up to {} s",
                QUERY_PAUSE.as_secs()
            )));
        }
        match self.request("query", &[query], self.query_timeout).await {
            Ok(mut v) => Ok(v.pop().unwrap_or_default()),
            Err(e) => {
                let mut pause = self.query_pause.lock().unwrap_or_else(|e| e.into_inner());
                *pause = Some((Instant::now() + QUERY_PAUSE, e.0.clone()));
                Err(e)
            }
        }
    }

    async fn request(
        &self,
        kind: &str,
        texts: &[&str],
        timeout: Duration,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let clipped: Vec<&str> = texts.iter().map(|t| clip(t)).collect();
        let result = tokio::time::timeout(timeout, self.post(&clipped)).await;
        let outcome = match &result {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        };
        self.requests.with_label_values(&[kind, outcome]).inc();
        result.map_err(|_| EmbedError(format!("no answer within {} ms", timeout.as_millis())))?
    }

    async fn post(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut request = self
            .client
            .post(self.url.clone())
            .json(&json!({"model": self.model, "input": texts}));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        // reqwest's errors name the URL (which carries no credentials) and the cause.
        let mut response = request
            .send()
            .await
            .map_err(|e| EmbedError(format!("provider unreachable: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            // The body is not quoted: providers echo parts of keys in authentication errors.
            return Err(EmbedError(format!("provider answered HTTP {status}")));
        }
        // A float in JSON is at most ~25 bytes; anything far larger is not an answer to this.
        let limit = texts.len() * self.dimensions * 32 + 64 * 1024;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| EmbedError(format!("reading the answer: {e}")))?
        {
            if body.len() + chunk.len() > limit {
                return Err(EmbedError(format!("answer larger than {limit} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        parse_answer(&body, texts.len(), self.dimensions)
    }
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// The vectors of an embeddings answer, in input order, each checked to have `dimensions`.
fn parse_answer(body: &[u8], count: usize, dimensions: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| EmbedError(format!("not an embeddings answer: {e}")))?;
    if answer.data.len() != count {
        return Err(EmbedError(format!(
            "{} embeddings for {count} inputs",
            answer.data.len()
        )));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; count];
    for (i, item) in answer.data.into_iter().enumerate() {
        let at = item.index.unwrap_or(i);
        if item.embedding.len() != dimensions {
            return Err(EmbedError(format!(
                "an embedding has {} dimensions; search.embeddings.dimensions is {dimensions}",
                item.embedding.len()
            )));
        }
        match out.get_mut(at) {
            Some(slot @ None) => *slot = Some(item.embedding),
            _ => {
                return Err(EmbedError(format!(
                    "index {at} is out of range or repeated"
                )));
            }
        }
    }
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_put_in_input_order_and_checked() {
        let body = br#"{"data":[{"index":1,"embedding":[0,1]},{"index":0,"embedding":[1,0]}]}"#;
        assert_eq!(
            parse_answer(body, 2, 2).unwrap(),
            vec![vec![1.0, 0.0], vec![0.0, 1.0]]
        );
        let err = parse_answer(body, 2, 3).unwrap_err().0;
        assert!(err.contains("dimensions"), "{err}");
        assert!(parse_answer(body, 3, 2).is_err());
        let repeated = br#"{"data":[{"index":0,"embedding":[0,1]},{"index":0,"embedding":[1,0]}]}"#;
        assert!(parse_answer(repeated, 2, 2).is_err());
        assert!(parse_answer(b"<html>", 1, 2).is_err());
    }

    #[test]
    fn long_texts_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT_CHARS + 5);
        assert_eq!(clip(&long).chars().count(), MAX_TEXT_CHARS);
        assert_eq!(text_hash(&long), text_hash(clip(&long)));
        assert_eq!(clip("short"), "short");
    }
}
