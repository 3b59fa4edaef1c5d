//! What the operator sees: one line per step with its status and duration, the plan or the
//! changes under it, progress while waiting, and a summary.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpgw_core::plan::{Action, Change};

/// Where lines go: stdout, or a buffer (tests).
#[derive(Clone)]
pub struct Output {
    sink: Arc<Mutex<Box<dyn Write + Send>>>,
    /// Whether progress may redraw one line (`\r`) instead of printing new ones.
    tty: bool,
    /// Print unchanged objects too.
    pub verbose: bool,
}

impl Output {
    pub fn stdout(verbose: bool) -> Self {
        Self {
            sink: Arc::new(Mutex::new(Box::new(std::io::stdout()))),
            tty: std::io::stdout().is_terminal(),
            verbose,
        }
    }

    pub fn to_writer(w: Box<dyn Write + Send>, verbose: bool) -> Self {
        Self {
            sink: Arc::new(Mutex::new(w)),
            tty: false,
            verbose,
        }
    }

    pub fn line(&self, text: &str) {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(sink, "{text}");
        let _ = sink.flush();
    }

    /// Progress of a wait: redrawn in place on a terminal, a new line otherwise.
    pub fn progress(&self, text: &str) {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        if self.tty {
            let _ = write!(sink, "\r\x1b[2K          {text}");
        } else {
            let _ = writeln!(sink, "          {text}");
        }
        let _ = sink.flush();
    }

    /// Ends a redrawn progress line before the next output.
    pub fn end_progress(&self) {
        if self.tty {
            let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
            let _ = write!(sink, "\r\x1b[2K");
            let _ = sink.flush();
        }
    }

    /// The objects of a step: changes always, unchanged ones only when verbose.
    pub fn changes(&self, changes: &[Change]) {
        for c in changes {
            if c.action != Action::Unchanged || self.verbose {
                self.line(&format!("          {c}"));
            }
        }
    }
}

/// "1.2 s", "250 ms", "3 min 05 s".
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Output kept in memory: for a failed run's error (the Keycloak fixture of
/// `mcpgw-test-support`) and for tests.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
