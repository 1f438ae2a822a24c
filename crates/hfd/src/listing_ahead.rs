//! The rest of a listing, read while the files of its first pages download
//! (decision 0065): each page is checked (names this filesystem cannot
//! store, case/Unicode collisions with every earlier page) before any of
//! its files is classified, then classified on the blocking pool
//! (`classify.rs`); its files come out in listing order, a chunk at a time.
//! One page is asked at a time: each page's cursor comes from the one
//! before.

use hfd_hub::{PathCollisions, RemoteFile, TreePages};

use crate::classify::PagedClassifier;
use crate::download::PlannedFile;
use crate::error::Result;
use crate::names::NameRules;

/// A listing in progress and the classification of its pages.
pub(crate) struct ListingAhead {
    pages: TreePages,
    classifier: PagedClassifier,
    collisions: PathCollisions,
    names: NameRules,
}

impl std::fmt::Debug for ListingAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListingAhead")
            .field("listed_files", &self.pages.listed_files())
            .finish_non_exhaustive()
    }
}

impl ListingAhead {
    /// A listing read through `pages`, classified by `classifier`.
    pub(crate) fn new(pages: TreePages, classifier: PagedClassifier, names: NameRules) -> Self {
        Self {
            pages,
            classifier,
            collisions: PathCollisions::default(),
            names,
        }
    }

    /// Fetches the next page and starts classifying it; `false` once the
    /// last page was read. A page whose names cannot be stored here, or
    /// that collides with an earlier page, fails before any of its files is
    /// classified (so none of them is ever downloaded).
    pub(crate) async fn read_page(&mut self) -> Result<bool> {
        let Some(page) = self.pages.next_page().await? else {
            return Ok(false);
        };
        self.take(page)?;
        Ok(true)
    }

    /// Checks `page` and starts classifying it.
    pub(crate) fn take(&mut self, page: Vec<RemoteFile>) -> Result<()> {
        self.names.check(page.iter().map(|f| f.path.as_str()))?;
        self.collisions.add(page.iter().map(|f| f.path.as_str()))?;
        self.classifier.push(page);
        Ok(())
    }

    /// Selected files read so far.
    pub(crate) fn files_taken(&self) -> usize {
        self.classifier.taken()
    }

    /// Pages asked of the endpoint so far.
    pub(crate) fn requests_sent(&self) -> u64 {
        self.pages.pages_asked()
    }

    /// Files listed so far (before the selection).
    pub(crate) fn listed_files(&self) -> usize {
        self.pages.listed_files()
    }

    /// Every file of the pages read so far not taken yet, classified, in
    /// listing order (reads no page).
    pub(crate) async fn classified(&mut self) -> Result<Vec<PlannedFile>> {
        let mut files = Vec::new();
        while let Some(chunk) = self.classifier.next_chunk().await {
            files.extend(chunk?);
        }
        Ok(files)
    }

    /// Whether the last page was read.
    pub(crate) fn is_done(&self) -> bool {
        self.pages.is_done()
    }

    /// The next chunk of classified files in listing order, reading pages
    /// while none is classified yet (the next page's round trip overlaps
    /// the classification); `None` after the last.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Vec<PlannedFile>>> {
        while !self.classifier.front_ready() && !self.pages.is_done() {
            self.read_page().await?;
        }
        self.classifier.next_chunk().await.transpose()
    }

    /// After the last chunk: the files listed (before the selection); fails
    /// when pages are left or an explicit path was not listed.
    pub(crate) fn finish(self) -> Result<usize> {
        Ok(self.pages.finish()?)
    }
}
