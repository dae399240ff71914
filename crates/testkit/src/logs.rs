//! What a test logged: the JSON lines a function writes under Lambda (`matbakh_lambda::logs`),
//! with each line's spans and their fields, caught in memory.
//!
//! One subscriber serves the whole test binary (the global default, installed on first use): it
//! writes each event into the capture of the thread the event happens on, if that thread has
//! one. A subscriber made one thread's default (`tracing::subscriber::set_default`) loses events
//! while other test threads meet new callsites: tracing keeps each callsite's interest, and the
//! level every callsite is checked against, for the whole process, and recomputes them from the
//! dispatchers it knows at that moment (a cold CI run caught no line at all so).

use std::cell::RefCell;
use std::io;
use std::sync::{Arc, Mutex, Once};

thread_local! {
    /// Where this thread's events go while a test captures them.
    static SINK: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

static INSTALLED: Once = Once::new();

/// The lines logged on a test's thread while its [`Capturing`] guard lives.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

/// Captures into a [`Captured`] until dropped.
#[must_use = "the capture ends when the guard is dropped"]
pub struct Capturing(());

impl Drop for Capturing {
    fn drop(&mut self) {
        SINK.with(|sink| sink.borrow_mut().take());
    }
}

impl Captured {
    /// Catches every event from DEBUG up that this thread logs (a `#[tokio::test]`'s runtime
    /// runs on one), as JSON with its spans, until the guard drops.
    pub fn start(&self) -> Capturing {
        INSTALLED.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::DEBUG)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(|| ThreadSink)
                .finish();
            // Another global default of this test binary's would leave the captures empty,
            // which the tests reading them notice.
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        SINK.with(|sink| *sink.borrow_mut() = Some(self.clone()));
        Capturing(())
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("a test's log buffer")).into_owned()
    }
}

/// The writer of the global subscriber: into the current thread's capture, or nowhere.
struct ThreadSink;

impl io::Write for ThreadSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        SINK.with(|sink| {
            if let Some(captured) = sink.borrow().as_ref() {
                captured.0.lock().expect("a test's log buffer").extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
