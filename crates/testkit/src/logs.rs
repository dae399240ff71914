//! What a test logged: the JSON lines a function writes under Lambda (`matbakh_lambda::logs`),
//! with each line's spans and their fields, caught in memory.

use std::io;
use std::sync::{Arc, Mutex};

/// The lines logged while [`Captured::subscriber`] was the default.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// A subscriber writing every event from DEBUG up, as JSON with its spans, into this buffer;
    /// make it the test's default with `tracing::subscriber::set_default` (one thread: a
    /// `#[tokio::test]`'s runtime).
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let lines = self.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(move || lines.clone())
            .finish()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("a test's log buffer")).into_owned()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("a test's log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
