//! The one progress-reporting interface of dfl-rs.
//!
//! Library code never prints: it calls these methods, and the front end (indicatif bars in the
//! CLI, JSON events in a later UI) decides how to show them.

/// Receives progress of a long job. Implementations must be cheap and thread-safe: workers
/// call [`Progress::inc`] from many threads.
pub trait Progress: Send + Sync {
    /// A new phase starts: `label` says what is being done, `total` how many units it has
    /// (`None` when unknown, e.g. frames of a video whose length ffprobe could not tell).
    fn start(&self, label: &str, total: Option<u64>);
    /// `n` more units are done in the current phase.
    fn inc(&self, n: u64);
    /// A short status line for the current phase (a loss value, a file name).
    fn message(&self, _msg: &str) {}
    /// The current phase is over.
    fn finish(&self);
}

/// A [`Progress`] that shows nothing, for tests and quiet callers.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn inc(&self, _n: u64) {}
    fn finish(&self) {}
}
