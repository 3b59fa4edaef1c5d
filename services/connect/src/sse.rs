//! Server-sent events as the Streamable HTTP transport uses them: `data:` lines joined by
//! newlines, `event:` (only `message`, or none, carries JSON-RPC), `id:` (kept for resuming
//! with `Last-Event-ID`); comments (`: keep-alive`) and `retry:` are skipped. Lines end with
//! LF, CRLF or CR (the SSE grammar allows all three).

/// One event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    /// Whether it carries a JSON-RPC message.
    pub fn is_message(&self) -> bool {
        self.event.as_deref().is_none_or(|e| e == "message") && !self.data.is_empty()
    }
}

/// An incremental parser: bytes in, complete events out.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    pending: Event,
    data_lines: Vec<String>,
    after_cr: bool,
}

/// The largest line accepted (a JSON-RPC message is one `data:` line).
pub const MAX_LINE: usize = 64 << 20;

impl Parser {
    /// Feeds `bytes`; the events they complete. `Err` on a line longer than [`MAX_LINE`].
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, &'static str> {
        let mut events = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line) {
                        events.push(event);
                    }
                }
                _ if self.line.len() >= MAX_LINE => return Err("an event line is too long"),
                _ => self.line.push(b),
            }
        }
        Ok(events)
    }

    fn line_done(&mut self, line: &[u8]) -> Option<Event> {
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            let mut event = std::mem::take(&mut self.pending);
            event.data = std::mem::take(&mut self.data_lines).join("\n");
            return (event.event.is_some() || event.id.is_some() || !event.data.is_empty())
                .then_some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "data" => self.data_lines.push(value),
            "event" => self.pending.event = Some(value),
            "id" => self.pending.id = Some(value),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings_come_out_whole() {
        let mut p = Parser::default();
        let mut events = p
            .feed(b": keep-alive\n\nid: 7\r\nevent: message\r\nda")
            .unwrap();
        assert!(events.is_empty());
        events.extend(
            p.feed(b"ta: {\"a\":1}\r\n\r\ndata: x\rdata: y\r\r")
                .unwrap(),
        );
        assert_eq!(
            events,
            [
                Event {
                    event: Some("message".into()),
                    id: Some("7".into()),
                    data: "{\"a\":1}".into()
                },
                Event {
                    event: None,
                    id: None,
                    data: "x\ny".into()
                },
            ]
        );
        assert!(events.iter().all(Event::is_message));
    }
}
