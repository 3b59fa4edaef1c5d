//! The JSON-RPC messages of one HTTP answer of the gateway, as they arrive: the one message or
//! batch of an `application/json` body, or the `message` events of a `text/event-stream`
//! (with the last event id, for resuming). A body that is not JSON-RPC (an error envelope
//! `{"code", "detail"}`, a proxy's page) yields no message and a short `detail` for the error
//! the bridge makes of it.

use std::collections::VecDeque;

use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::{Response, header};
use serde_json::Value;

use crate::error::chain;
use crate::sse;

/// The `content-type` of `response`, lower case.
pub fn content_type(response: &Response) -> String {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The JSON-RPC messages of one answer, as they arrive.
pub struct Messages {
    queue: VecDeque<Value>,
    stream: Option<BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    parser: sse::Parser,
    pub last_event_id: Option<String>,
    /// Why the stream broke, if it did.
    pub error: Option<String>,
    /// For a non-JSON-RPC error answer: `: <what the body said>`.
    pub detail: String,
}

impl Messages {
    pub async fn read(response: Response) -> Result<Messages, String> {
        let mut messages = Messages {
            queue: VecDeque::new(),
            stream: None,
            parser: sse::Parser::default(),
            last_event_id: None,
            error: None,
            detail: String::new(),
        };
        if content_type(&response).starts_with("text/event-stream") {
            messages.stream = Some(response.bytes_stream().boxed());
            return Ok(messages);
        }
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("the gateway's answer broke off ({})", chain(&e)))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => messages.queue.extend(items),
            Ok(v) if v.get("jsonrpc").is_some() => messages.queue.push_back(v),
            Ok(v) => {
                let said = v
                    .get("detail")
                    .or_else(|| v.get("error_description"))
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !said.is_empty() {
                    messages.detail = format!(": {said}");
                }
            }
            Err(_) if !status.is_success() && !text.trim().is_empty() => {
                let excerpt: String = text.trim().chars().take(200).collect();
                messages.detail = format!(": {excerpt}");
            }
            Err(_) => {}
        }
        Ok(messages)
    }

    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(v) = self.queue.pop_front() {
                return Some(v);
            }
            let stream = self.stream.as_mut()?;
            match stream.next().await {
                Some(Ok(chunk)) => match self.parser.feed(&chunk) {
                    Ok(events) => {
                        for event in events {
                            if event.id.is_some() {
                                self.last_event_id = event.id.clone();
                            }
                            if event.is_message()
                                && let Ok(v) = serde_json::from_str(&event.data)
                            {
                                self.queue.push_back(v);
                            }
                        }
                    }
                    Err(e) => {
                        self.error = Some(format!("the gateway's stream is unusable ({e})"));
                        self.stream = None;
                    }
                },
                Some(Err(e)) => {
                    // A broken stream may be resumed (SEP-1699) when it gave event ids.
                    if self.last_event_id.is_none() {
                        self.error = Some(format!("the gateway's stream broke ({})", chain(&e)));
                    }
                    self.stream = None;
                }
                None => self.stream = None,
            }
        }
    }
}
