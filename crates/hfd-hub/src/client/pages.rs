//! A commit's listing read one tree page at a time ([`TreePages`]), so the
//! caller can work on a page's files while the next page is on its way.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher, RandomState};
use std::sync::Arc;

use tracing::{debug, info, warn};
use url::Url;

use super::checkpoint::{self, ListingStore};
use super::error_answer::Purpose;
use super::hub_client::HubClient;
use crate::endpoint::UrlOrigin;
use crate::error::{Error, Result};
use crate::file::{RemoteFile, parse_page};
use crate::repo::{Commit, RepoRef};
use crate::selection::Selection;
use hfd_types::RedactedUrl;

/// The pages of a commit's recursive tree listing, fetched one after the
/// other (each names the next in its `Link` header), checked as a whole: a
/// repeated page, an empty page with a next link, a duplicate path, too
/// many entries or a next link to a foreign host is an
/// [`Error::IncompleteListing`] (or [`Error::TooManyFiles`]), never a
/// shorter listing. Made by [`HubClient::tree_pages`].
///
/// Memory: one page (at most `max_json_bytes`) while it is parsed, plus 8
/// bytes per listed path for duplicate detection; the selected files are
/// handed to the caller page by page.
#[derive(Debug)]
pub struct TreePages {
    hub: HubClient,
    repo: RepoRef,
    commit: Commit,
    selection: Selection,
    next: Option<Url>,
    // Hashes (keyed at random, so a server cannot aim collisions) of every
    // listed path: 8 bytes each instead of the path. A collision (odds
    // about n²/2⁶⁵) reports a duplicate that is none; it never lets a
    // duplicate through.
    path_keys: RandomState,
    seen_paths: HashSet<u64>,
    seen_pages: HashSet<u64>,
    explicit_found: Vec<bool>,
    entries_total: usize,
    listed_files: usize,
    page_number: u64,
    /// Pages asked of the endpoint (not read back from a saved listing).
    pages_asked: u64,
    /// Where the progress is kept (decision 0027), while writing it works.
    store: Option<Arc<dyn ListingStore>>,
    /// Whether this run wrote the store's header yet.
    store_started: bool,
    /// Selected files of the pages an earlier run saved, not handed out yet.
    saved: VecDeque<Vec<RemoteFile>>,
}

impl HubClient {
    /// The listing of `repo` at `commit`, page by page, keeping the files
    /// `selection` picks ([`TreePages::next_page`]). No request is made
    /// until the first page is asked for.
    pub fn tree_pages(
        &self,
        repo: &RepoRef,
        commit: &Commit,
        selection: &Selection,
    ) -> Result<TreePages> {
        let first = Self::parse_url(&self.endpoint().tree_url(repo, commit.as_str()))?;
        Ok(TreePages {
            hub: self.clone(),
            repo: repo.clone(),
            commit: commit.clone(),
            explicit_found: vec![false; selection.explicit_paths().len()],
            selection: selection.clone(),
            next: Some(first),
            path_keys: RandomState::new(),
            seen_paths: HashSet::new(),
            seen_pages: HashSet::new(),
            entries_total: 0,
            listed_files: 0,
            page_number: 0,
            pages_asked: 0,
            store: None,
            store_started: false,
            saved: VecDeque::new(),
        })
    }
}

impl TreePages {
    /// Keeps the listing's progress in `store`, page by page, and first
    /// takes up the pages an earlier, interrupted run of the same listing
    /// saved there: their files come back from [`next_page`](Self::next_page)
    /// without a request, and the listing goes on from the last saved
    /// page's cursor. Saved pages pass every check a fetched page does; when
    /// they do not (or the store holds another listing), they are ignored
    /// and the listing starts over. The store is emptied when the listing
    /// completes ([`finish`](Self::finish)).
    #[must_use]
    pub fn resume_from(mut self, store: Arc<dyn ListingStore>) -> Self {
        if let Some(bytes) = store.load() {
            let header = checkpoint::header(&self.repo, &self.commit);
            let first = self.next.clone();
            let endpoint = self.hub.endpoint().origin().clone();
            let on_endpoint = |url: &Url| UrlOrigin::of(url).as_ref() == Some(&endpoint);
            let (pages, valid) = match &first {
                Some(first) => checkpoint::decode(&bytes, &header, first, on_endpoint),
                None => (Vec::new(), 0),
            };
            if let Some(last) = pages.last() {
                let next = last.next.clone();
                match self.replay(&pages) {
                    Ok(()) => {
                        info!(
                            pages = pages.len(),
                            files = self.listed_files,
                            "resuming an interrupted listing after its last saved page"
                        );
                        self.next = Some(next);
                        // Drops a torn or foreign tail before appending.
                        self.store_started = store.start(&bytes[..valid]).is_ok();
                    }
                    Err(e) => {
                        warn!(error = %e, "the saved listing progress is unusable; listing from the first page");
                        self = self
                            .hub
                            .tree_pages(&self.repo, &self.commit, &self.selection)
                            .unwrap_or(self);
                    }
                }
            }
        }
        self.store = Some(store);
        self
    }

    /// Takes up saved pages as if they had just been fetched.
    fn replay(&mut self, pages: &[checkpoint::SavedPage<'_>]) -> Result<()> {
        for page in pages {
            self.page_number = page.number;
            let shown = RedactedUrl::new(page.url.as_str());
            let (files, entries) = parse_page(page.files, &shown)?;
            // Folders are counted, not saved.
            if page.entries < entries {
                return Err(Error::IncompleteListing {
                    url: shown,
                    reason: "a saved page does not match its entry count".to_owned(),
                });
            }
            let files = self.accept(&shown, page.body_hash, files, page.entries, true)?;
            let selected = self.select(files, &shown)?;
            self.saved.push_back(selected);
        }
        Ok(())
    }

    /// The selected files of the next page, in listing order (possibly
    /// none), or `None` once the last page was read.
    pub async fn next_page(&mut self) -> Result<Option<Vec<RemoteFile>>> {
        if let Some(saved) = self.saved.pop_front() {
            return Ok(Some(saved));
        }
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        self.page_number += 1;
        self.pages_asked += 1;
        let page_number = self.page_number;
        let (final_url, page_headers, body) = self
            .hub
            .api_get(&url, &self.repo, self.commit.as_str(), Purpose::Tree)
            .await?;
        let shown = RedactedUrl::new(final_url.as_str());
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        let body_hash = hasher.finish();
        let (page_files, entry_count) = parse_page(&body, &shown)?;
        drop(body);
        let next_url = self.hub.next_page_url(&final_url, &page_headers)?;
        let page_files = self.accept(
            &shown,
            body_hash,
            page_files,
            entry_count,
            next_url.is_some(),
        )?;
        let record = next_url.as_ref().and_then(|next| {
            self.keeping(&url, next).then(|| {
                checkpoint::encode(page_number, entry_count, body_hash, &url, next, &page_files)
            })
        });
        let selected = self.select(page_files, &shown)?;
        if let Some(record) = record {
            self.save(&record);
        }
        self.next = next_url;
        Ok(Some(selected))
    }

    /// The page-level checks (a repeated page, an empty page that links on,
    /// too many entries); the paths scrubbed of the token.
    fn accept(
        &mut self,
        shown: &RedactedUrl,
        body_hash: u64,
        mut files: Vec<RemoteFile>,
        entry_count: usize,
        has_next: bool,
    ) -> Result<Vec<RemoteFile>> {
        let page_number = self.page_number;
        let incomplete = |reason: String| Error::IncompleteListing {
            url: shown.clone(),
            reason,
        };
        if !self.seen_pages.insert(body_hash) {
            return Err(incomplete(format!(
                "page {page_number} repeats an earlier page (a mirror that ignores the \
                 pagination cursor?)"
            )));
        }
        if entry_count == 0 && has_next {
            return Err(incomplete(format!(
                "page {page_number} is empty but links to a next page"
            )));
        }
        self.entries_total = self.entries_total.saturating_add(entry_count);
        let max_files = self.hub.config().max_files;
        if self.entries_total > max_files {
            return Err(Error::TooManyFiles { limit: max_files });
        }
        for file in &mut files {
            // A path may spell the token with JSON escapes the byte scrub
            // of the body did not see.
            file.path = self.hub.scrub_text(&file.path);
        }
        Ok(files)
    }

    /// The files of the current page (at `shown`) that the selection picks;
    /// every path checked against the paths listed before.
    fn select(&mut self, files: Vec<RemoteFile>, shown: &RedactedUrl) -> Result<Vec<RemoteFile>> {
        let page_number = self.page_number;
        let mut selected = Vec::with_capacity(files.len());
        for file in files {
            if !self
                .seen_paths
                .insert(self.path_keys.hash_one(file.path.as_str()))
            {
                return Err(Error::IncompleteListing {
                    url: shown.clone(),
                    reason: format!("{:?} is listed twice (page {page_number})", file.path),
                });
            }
            self.listed_files += 1;
            for (found, wanted) in self
                .explicit_found
                .iter_mut()
                .zip(self.selection.explicit_paths())
            {
                *found = *found || crate::selection::names(wanted, &file.path);
            }
            if self.selection.matches(&file.path) {
                selected.push(file);
            }
        }
        debug!(
            page = page_number,
            listed = self.listed_files,
            selected = selected.len(),
            "tree page"
        );
        Ok(selected)
    }

    /// Whether the page asked at `url`, linking to `next`, is saved: only
    /// while a store is kept, and never a URL that carries the token.
    fn keeping(&self, url: &Url, next: &Url) -> bool {
        self.store.is_some()
            && [url, next]
                .iter()
                .all(|u| self.hub.scrub_text(u.as_str()) == u.as_str())
    }

    /// Writes one page's record; a failed write stops the keeping (the
    /// listing itself goes on).
    fn save(&mut self, record: &[u8]) {
        let Some(store) = &self.store else {
            return;
        };
        let written = if self.store_started {
            store.append(record)
        } else {
            let mut first = checkpoint::header(&self.repo, &self.commit).into_bytes();
            first.extend_from_slice(record);
            store.start(&first)
        };
        match written {
            Ok(()) => self.store_started = true,
            Err(e) => {
                warn!(error = %e, "cannot keep the listing's progress; an interrupted listing will start over");
                self.store = None;
            }
        }
    }

    /// Pages asked of the endpoint so far (saved pages read back cost
    /// none).
    pub fn pages_asked(&self) -> u64 {
        self.pages_asked
    }

    /// Whether the last page was read: [`Self::next_page`] has nothing
    /// more to give and asks for nothing.
    pub fn is_done(&self) -> bool {
        self.next.is_none() && self.saved.is_empty()
    }

    /// Files listed so far (before the selection).
    pub fn listed_files(&self) -> usize {
        self.listed_files
    }

    /// After the last page: the number of files listed (before the
    /// selection). Fails with [`Error::PathNotInListing`] when an explicit
    /// path of the selection names no listed file, and with
    /// [`Error::IncompleteListing`] when pages are left.
    pub fn finish(self) -> Result<usize> {
        if let Some(next) = &self.next {
            return Err(Error::IncompleteListing {
                url: RedactedUrl::new(next.as_str()),
                reason: "the listing was not read to its last page".to_owned(),
            });
        }
        if let Some(missing) = self
            .explicit_found
            .iter()
            .zip(self.selection.explicit_paths())
            .find_map(|(found, wanted)| (!found).then_some(wanted))
        {
            return Err(Error::PathNotInListing {
                path: missing.clone(),
            });
        }
        if let Some(store) = &self.store {
            store.remove();
        }
        Ok(self.listed_files)
    }
}
