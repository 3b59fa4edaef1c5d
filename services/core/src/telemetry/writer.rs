//! The log writer: lines go into a buffer in memory and a thread of their own writes them to
//! stdout, so a request never waits for a `write` system call.
//!
//! Rules:
//! - Lines keep their order, and a line is never split: a formatted line arrives in one `write`
//!   and is appended whole.
//! - The writer thread wakes at least every [`FLUSH_EVERY`] and as soon as the buffer holds
//!   [`WAKE_AT`] bytes, so lines are at most that late and a burst costs one wake-up per
//!   [`WAKE_AT`] bytes, not one per line.
//! - Memory is bounded: past [`MAX_BUFFERED`] bytes (stdout blocked, say a full pipe) the request
//!   writes the buffer itself, as a synchronous writer would, rather than growing it.
//! - [`flush`] writes what is buffered; `serve::run` calls it when the service stops, so the
//!   last lines (the audit of the last requests, the stop message) are not lost.

use std::io::Write;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

/// The longest a line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A buffer this full wakes the writer at once.
pub const WAKE_AT: usize = 64 * 1024;
/// A buffer this full is written by the request that finds it so (back-pressure).
pub const MAX_BUFFERED: usize = 4 * 1024 * 1024;

struct Shared {
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
    /// Held while a taken buffer is written, so two writers cannot reorder lines.
    output: Mutex<()>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(|| {
                let s = shared();
                loop {
                    {
                        let buffer = s.buffer.lock().unwrap_or_else(|e| e.into_inner());
                        if buffer.len() < WAKE_AT {
                            let _ = s.wake.wait_timeout(buffer, FLUSH_EVERY);
                        }
                    }
                    write_out(s);
                }
            })
            .expect("starting the log writer thread");
        Shared {
            buffer: Mutex::new(Vec::with_capacity(WAKE_AT)),
            wake: Condvar::new(),
            output: Mutex::new(()),
        }
    })
}

/// Takes the buffer and writes it to stdout (under `output`, so in order).
fn write_out(s: &Shared) {
    let _order = s.output.lock().unwrap_or_else(|e| e.into_inner());
    let taken = {
        let mut buffer = s.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.is_empty() {
            return;
        }
        std::mem::replace(&mut *buffer, Vec::with_capacity(WAKE_AT))
    };
    let mut out = std::io::stdout().lock();
    // Nowhere to report a failed log write; the next lines try again.
    let _ = out.write_all(&taken);
    let _ = out.flush();
}

/// Writes what is buffered now (call before the process exits).
pub fn flush() {
    if let Some(s) = SHARED.get() {
        write_out(s);
    }
}

/// A `MakeWriter` for the fmt layer: each formatted line is appended to the buffer.
#[derive(Debug, Clone, Copy, Default)]
pub struct BufferedStdout;

impl Write for BufferedStdout {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let s = shared();
        let len = {
            let mut buffer = s.buffer.lock().unwrap_or_else(|e| e.into_inner());
            buffer.extend_from_slice(line);
            buffer.len()
        };
        if len >= MAX_BUFFERED {
            write_out(s);
        } else if len >= WAKE_AT && len - line.len() < WAKE_AT {
            s.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BufferedStdout {
    type Writer = BufferedStdout;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
