//! A commit's listing read one tree page at a time ([`TreePages`]), so the
//! caller can work on a page's files while the next page is on its way.

use std::collections::HashSet;
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher, RandomState};

use tracing::debug;
use url::Url;

use super::error_answer::Purpose;
use super::hub_client::HubClient;
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
        })
    }
}

impl TreePages {
    /// The selected files of the next page, in listing order (possibly
    /// none), or `None` once the last page was read.
    pub async fn next_page(&mut self) -> Result<Option<Vec<RemoteFile>>> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        self.page_number += 1;
        let page_number = self.page_number;
        let (final_url, page_headers, body) = self
            .hub
            .api_get(&url, &self.repo, self.commit.as_str(), Purpose::Tree)
            .await?;
        let shown = RedactedUrl::new(final_url.as_str());
        let incomplete = |reason: String| Error::IncompleteListing {
            url: shown.clone(),
            reason,
        };
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        if !self.seen_pages.insert(hasher.finish()) {
            return Err(incomplete(format!(
                "page {page_number} repeats an earlier page (a mirror that ignores the \
                 pagination cursor?)"
            )));
        }
        let (page_files, entry_count) = parse_page(&body, &shown)?;
        drop(body);
        let next_url = self.hub.next_page_url(&final_url, &page_headers)?;
        if entry_count == 0 && next_url.is_some() {
            return Err(incomplete(format!(
                "page {page_number} is empty but links to a next page"
            )));
        }
        self.entries_total = self.entries_total.saturating_add(entry_count);
        let max_files = self.hub.config().max_files;
        if self.entries_total > max_files {
            return Err(Error::TooManyFiles { limit: max_files });
        }
        let mut selected = Vec::with_capacity(page_files.len());
        for mut file in page_files {
            // A path may spell the token with JSON escapes the byte scrub
            // of the body did not see.
            file.path = self.hub.scrub_text(&file.path);
            if !self
                .seen_paths
                .insert(self.path_keys.hash_one(file.path.as_str()))
            {
                return Err(incomplete(format!(
                    "{:?} is listed twice (page {page_number})",
                    file.path
                )));
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
        self.next = next_url;
        Ok(Some(selected))
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
        Ok(self.listed_files)
    }
}
