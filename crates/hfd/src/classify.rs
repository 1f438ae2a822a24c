//! Classifying listed files against the target while the listing is still
//! arriving: each tree page's files are checked on a few blocking threads
//! as soon as the page is parsed, so the local checks of 10^5 files overlap
//! the round trips of the next pages instead of following them (decision
//! 0026).

use std::collections::VecDeque;
use std::sync::Arc;

use hfd_hub::{Commit, RemoteFile};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::download::PlannedFile;
use crate::error::Result;
use crate::layout::{FetchPolicy, Layout};
use crate::publisher::blocking;

/// Files classified by one blocking task: a quarter of a 1,000-entry page,
/// so two threads share a page and a task stays short.
const CHUNK: usize = 256;

/// Classifies the pages of a listing in the background, in order.
pub(crate) struct PagedClassifier {
    layout: Arc<dyn Layout>,
    commit: Commit,
    fetch: FetchPolicy,
    /// One permit per thread allowed to classify at once.
    threads: Arc<Semaphore>,
    /// Each chunk's classification, in listing order.
    chunks: VecDeque<JoinHandle<Result<Vec<PlannedFile>>>>,
    files: usize,
}

impl PagedClassifier {
    /// Classifies against `layout` for `commit`, on as many threads as the
    /// machine has cores (at most 4: the checks are system calls on cached
    /// folders, and more threads only contend in the kernel).
    pub(crate) fn new(layout: Arc<dyn Layout>, commit: Commit, fetch: FetchPolicy) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        Self {
            layout,
            commit,
            fetch,
            threads: Arc::new(Semaphore::new(threads)),
            chunks: VecDeque::new(),
            files: 0,
        }
    }

    /// Starts classifying the files of one more page (in listing order);
    /// returns at once.
    pub(crate) fn push(&mut self, mut page: Vec<RemoteFile>) {
        self.files += page.len();
        while !page.is_empty() {
            let rest = page.split_off(page.len().min(CHUNK));
            let chunk = std::mem::replace(&mut page, rest);
            let (layout, commit, fetch) =
                (Arc::clone(&self.layout), self.commit.clone(), self.fetch);
            let threads = Arc::clone(&self.threads);
            self.chunks.push_back(tokio::spawn(async move {
                // Closed never: the semaphore lives as long as the tasks.
                let _thread = threads.acquire_owned().await;
                blocking(move || classify_all(layout.as_ref(), &commit, chunk, fetch)).await
            }));
        }
    }

    /// Files pushed so far.
    pub(crate) fn taken(&self) -> usize {
        self.files
    }

    /// Whether the oldest chunk not taken yet is classified.
    pub(crate) fn front_ready(&self) -> bool {
        self.chunks.front().is_some_and(JoinHandle::is_finished)
    }

    /// The oldest chunk not taken yet, classified (waiting for it); `None`
    /// when every pushed chunk was taken.
    pub(crate) async fn next_chunk(&mut self) -> Option<Result<Vec<PlannedFile>>> {
        let chunk = self.chunks.pop_front()?;
        Some(match chunk.await {
            Ok(classified) => classified,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        })
    }
}

/// What the run does with each of `files`. Fails early, before any byte
/// moves, on a path that would escape the target.
pub(crate) fn classify_all(
    layout: &dyn Layout,
    commit: &Commit,
    files: Vec<RemoteFile>,
    fetch: FetchPolicy,
) -> Result<Vec<PlannedFile>> {
    files
        .into_iter()
        .map(|remote| {
            let (action, settled) = layout.classify_settled(commit, &remote, fetch)?;
            Ok(PlannedFile::new(remote, action, settled))
        })
        .collect()
}
