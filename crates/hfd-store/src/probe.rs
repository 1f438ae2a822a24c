//! Test-only observation of the store's durability-relevant operations.
//!
//! In normal builds [`Probe`] is an empty struct whose methods do nothing.
//! Under `cfg(test)` a probe may carry a log of [`Event`]s, which the
//! power-cut model test replays to compute what a crash at any point would
//! leave on disk.

#[cfg(test)]
use std::sync::{Arc, Mutex};

use hfd_types::ByteRange;

/// One operation, in the order the store performed it.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A write of the partial completed (data in the page cache).
    DataWrite(ByteRange),
    /// The partial was truncated and preallocated anew.
    DataReset,
    /// A flush took its snapshot of completed writes and starts syncing.
    SyncStart,
    /// That sync returned: the snapshot is durable.
    SyncDone,
    /// Bytes written into the journal at an offset (not yet durable).
    JournalWrite { offset: u64, bytes: Vec<u8> },
    /// The journal was cut to a length (not yet durable).
    JournalTruncate(u64),
    /// The journal's content so far is durable.
    JournalSync,
}

/// Where the store reports its operations (tests only; free otherwise).
#[derive(Clone, Debug, Default)]
pub(crate) struct Probe {
    #[cfg(test)]
    log: Option<Arc<Mutex<Vec<Event>>>>,
}

#[cfg_attr(
    not(test),
    expect(
        clippy::unused_self,
        reason = "the probe records only in tests; elsewhere its methods are no-ops"
    )
)]
impl Probe {
    #[cfg(test)]
    pub(crate) fn recording(log: Arc<Mutex<Vec<Event>>>) -> Self {
        Self { log: Some(log) }
    }

    #[cfg(test)]
    fn push(&self, event: Event) {
        if let Some(log) = &self.log {
            log.lock().unwrap().push(event);
        }
    }

    pub(crate) fn data_write(&self, range: ByteRange) {
        #[cfg(test)]
        self.push(Event::DataWrite(range));
        #[cfg(not(test))]
        let _ = range;
    }

    pub(crate) fn data_reset(&self) {
        #[cfg(test)]
        self.push(Event::DataReset);
    }

    pub(crate) fn sync_start(&self) {
        #[cfg(test)]
        self.push(Event::SyncStart);
    }

    pub(crate) fn sync_done(&self) {
        #[cfg(test)]
        self.push(Event::SyncDone);
    }

    pub(crate) fn journal_write(&self, offset: u64, bytes: &[u8]) {
        #[cfg(test)]
        self.push(Event::JournalWrite {
            offset,
            bytes: bytes.to_vec(),
        });
        #[cfg(not(test))]
        let _ = (offset, bytes);
    }

    pub(crate) fn journal_truncate(&self, len: u64) {
        #[cfg(test)]
        self.push(Event::JournalTruncate(len));
        #[cfg(not(test))]
        let _ = len;
    }

    pub(crate) fn journal_sync(&self) {
        #[cfg(test)]
        self.push(Event::JournalSync);
    }
}
