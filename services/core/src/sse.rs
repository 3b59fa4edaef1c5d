//! Server-sent events: an incremental parser for upstream streams and the encoder for ours.
//!
//! Events are passed on one by one as they complete, so a stream is never held whole.

use bytes::{Bytes, BytesMut};

/// One event. `data` is the joined `data:` lines; `id`, `event` and `retry` are kept so a
/// stream passes through with its resume points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

impl Event {
    pub fn message(data: String) -> Self {
        Self {
            data,
            ..Self::default()
        }
    }

    /// The wire form, ending with the blank line.
    pub fn encode(&self) -> Bytes {
        let mut out = String::with_capacity(self.data.len() + 32);
        if let Some(event) = &self.event {
            out.push_str("event: ");
            out.push_str(event);
            out.push('\n');
        }
        if let Some(id) = &self.id {
            out.push_str("id: ");
            out.push_str(id);
            out.push('\n');
        }
        if let Some(retry) = self.retry {
            out.push_str(&format!("retry: {retry}\n"));
        }
        if self.data.is_empty() {
            out.push_str("data: \n");
        } else {
            for line in self.data.split('\n') {
                out.push_str("data: ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
        Bytes::from(out)
    }

    /// Whether this event carries a JSON-RPC message (the default `message` type with data).
    pub fn is_message(&self) -> bool {
        !self.data.is_empty() && self.event.as_deref().is_none_or(|e| e == "message")
    }
}

/// A keep-alive comment line (ignored by clients, keeps proxies from closing the stream).
pub fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

/// Why a stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an event is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the stream is not UTF-8")]
    NotUtf8,
}

/// Feeds bytes in, takes complete events out.
pub struct Parser {
    buffer: BytesMut,
    current: Event,
    has_field: bool,
    /// `data:` lines of the current event: the second and later are joined with "\n".
    data_lines: usize,
    max_event: usize,
    event_bytes: usize,
}

impl Parser {
    pub fn new(max_event: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            current: Event::default(),
            has_field: false,
            data_lines: 0,
            max_event,
            event_bytes: 0,
        }
    }

    /// Adds a chunk and returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n' || *b == b'\r') {
            // A CR may be followed by LF; wait for the next byte when the CR ends the buffer.
            let mut skip = 1;
            if self.buffer[end] == b'\r' {
                if end + 1 == self.buffer.len() {
                    break;
                }
                if self.buffer[end + 1] == b'\n' {
                    skip = 2;
                }
            }
            let line = self.buffer.split_to(end);
            let _ = self.buffer.split_to(skip);
            let line = std::str::from_utf8(&line).map_err(|_| SseError::NotUtf8)?;
            if let Some(event) = self.line(line)? {
                events.push(event);
            }
        }
        if self.buffer.len() + self.event_bytes > self.max_event {
            return Err(SseError::TooLarge(self.max_event));
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Result<Option<Event>, SseError> {
        if line.is_empty() {
            self.event_bytes = 0;
            if !self.has_field {
                return Ok(None);
            }
            self.has_field = false;
            self.data_lines = 0;
            return Ok(Some(std::mem::take(&mut self.current)));
        }
        self.event_bytes += line.len() + 1;
        if self.event_bytes > self.max_event {
            return Err(SseError::TooLarge(self.max_event));
        }
        if line.starts_with(':') {
            return Ok(None); // comment
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data_lines > 0 {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.data_lines += 1;
            }
            "event" => self.current.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.current.id = Some(value.to_owned()),
            "retry" => self.current.retry = value.parse().ok(),
            _ => return Ok(None),
        }
        self.has_field = true;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_complete_across_chunk_boundaries() {
        let mut p = Parser::new(1 << 20);
        assert!(p.feed(b"id: 7\nda").unwrap().is_empty());
        assert!(p.feed(b"ta: {\"a\":1}\r").unwrap().is_empty());
        let events = p
            .feed(b"\n\r\n: comment\n\nevent: endpoint\ndata: /m?s=1\n\n")
            .unwrap();
        assert_eq!(
            events,
            vec![
                Event {
                    id: Some("7".into()),
                    data: "{\"a\":1}".into(),
                    ..Event::default()
                },
                Event {
                    event: Some("endpoint".into()),
                    data: "/m?s=1".into(),
                    ..Event::default()
                },
            ]
        );
        assert!(events[0].is_message());
        assert!(!events[1].is_message());
    }

    #[test]
    fn multi_line_data_round_trips() {
        let e = Event {
            id: Some("x".into()),
            event: None,
            data: "line1\nline2".into(),
            retry: Some(500),
        };
        let mut p = Parser::new(1024);
        assert_eq!(p.feed(&e.encode()).unwrap(), vec![e]);
    }

    #[test]
    fn an_oversized_event_is_an_error() {
        let mut p = Parser::new(16);
        assert_eq!(
            p.feed(b"data: 0123456789012345678\n").unwrap_err(),
            SseError::TooLarge(16)
        );
        let mut p = Parser::new(16);
        assert!(p.feed(b"data: 01234567890123456789").is_err());
    }
}
