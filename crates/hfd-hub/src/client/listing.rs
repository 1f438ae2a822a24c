//! Pinning a revision, listing a commit's files page by page, and the
//! [`RepoPlan`] of pin + list + select.

use http::HeaderMap;
use serde::Deserialize;
use tracing::{debug, warn};
use url::Url;

use super::error_answer::Purpose;
use super::hub_client::HubClient;
use crate::endpoint::UrlOrigin;
use crate::error::{Error, Result};
use crate::file::RemoteFile;
use crate::headers;
use crate::repo::{Commit, RepoRef, Revision};
use crate::repo_path::check_path_collisions;
use crate::selection::Selection;
use hfd_types::RedactedUrl;

/// The outcome of pin + list + filter.
#[derive(Clone, Debug)]
pub struct RepoPlan {
    /// The repository.
    pub repo: RepoRef,
    /// The revision as asked.
    pub revision: Revision,
    /// The commit it was pinned to.
    pub commit: Commit,
    /// The selected files, in listing order.
    pub files: Vec<RemoteFile>,
    /// Number of files in the whole listing (before the selection).
    pub listed_files: usize,
    /// Sum of the selected files' sizes.
    pub total_bytes: u64,
    /// HTTP requests made to build this plan (redirect hops and retries
    /// included).
    pub requests: u64,
}

#[derive(Deserialize)]
struct RevisionInfo {
    #[serde(default)]
    sha: Option<String>,
}

impl HubClient {
    /// Pins `revision` to a commit: a 40-hex revision is used as is (no
    /// request), anything else is asked from
    /// `GET /api/{types}/{repo}/revision/{rev}` (`sha`).
    pub async fn pin_revision(&self, repo: &RepoRef, revision: &Revision) -> Result<Commit> {
        if let Some(commit) = revision.as_commit() {
            return Ok(commit);
        }
        let url = Self::parse_url(&self.endpoint().revision_url(repo, revision.as_str()))?;
        let answer = self
            .api_get(&url, repo, revision.as_str(), Purpose::Revision)
            .await;
        let (final_url, _, body) = match answer {
            // Some mirrors (Olah) answer "repository not found" for a
            // revision they do not have: if the repository itself answers,
            // it is the revision that is missing.
            Err(Error::RepoNotFound { request_id, .. })
                if revision.as_str() != "main" && self.repo_answers(repo).await =>
            {
                return Err(Error::RevisionNotFound {
                    repo: repo.to_string(),
                    revision: revision.as_str().to_owned(),
                    request_id,
                });
            }
            other => other?,
        };
        let malformed = |reason: String| Error::Malformed {
            url: RedactedUrl::new(final_url.as_str()),
            reason,
        };
        let info: RevisionInfo = serde_json::from_slice(&body)
            .map_err(|e| malformed(format!("the revision info is not a JSON object: {e}")))?;
        let sha = info
            .sha
            .ok_or_else(|| malformed("the revision info has no `sha`".to_owned()))?;
        let commit = Commit::parse(&sha).ok_or_else(|| {
            malformed(format!(
                "`sha` {:?} is not a 40-hex commit",
                headers::sanitize(&self.scrub_text(&sha))
            ))
        })?;
        debug!(repo = %repo, revision = %revision, commit = %commit, "pinned revision");
        Ok(commit)
    }

    /// Whether the repository exists and is visible to us: its info, or
    /// else its `main` branch (an offline Olah cannot answer the info, which
    /// needs the upstream hub), answers.
    async fn repo_answers(&self, repo: &RepoRef) -> bool {
        let endpoint = self.endpoint();
        for url in [
            endpoint.repo_info_url(repo),
            endpoint.revision_url(repo, "main"),
        ] {
            let Ok(url) = Self::parse_url(&url) else {
                return false;
            };
            if self
                .api_get(&url, repo, "main", Purpose::Revision)
                .await
                .is_ok()
            {
                return true;
            }
        }
        false
    }

    /// Lists every file of `repo` at `commit` through the recursive tree API,
    /// following `Link: rel="next"` pagination. Directories are skipped and
    /// every path is checked. A repeated page, an empty page with a next
    /// link, a duplicate path or a next link to a foreign host is an
    /// [`Error::IncompleteListing`]: a truncated listing is never returned.
    pub async fn list_files(&self, repo: &RepoRef, commit: &Commit) -> Result<Vec<RemoteFile>> {
        let (files, _) = self.list_selected(repo, commit, &Selection::all()).await?;
        Ok(files)
    }

    /// [`Self::list_files`], keeping only the files `selection` picks while
    /// the pages stream in ([`Self::tree_pages`]), so memory grows with the
    /// selection, not with the listing. Returns the selected files and the
    /// number of files listed. Fails with [`Error::PathNotInListing`] when
    /// an explicit path of the selection names no listed file.
    pub async fn list_selected(
        &self,
        repo: &RepoRef,
        commit: &Commit,
        selection: &Selection,
    ) -> Result<(Vec<RemoteFile>, usize)> {
        let mut pages = self.tree_pages(repo, commit, selection)?;
        let mut files: Vec<RemoteFile> = Vec::new();
        while let Some(page) = pages.next_page().await? {
            files.extend(page);
        }
        let listed_files = pages.finish()?;
        Ok((files, listed_files))
    }

    /// Pins `revision`, lists the files at that commit and applies
    /// `selection`: what a dry run shows. [`RepoPlan::requests`] counts the
    /// requests it made. Selected paths that would overwrite each other on
    /// a case-insensitive or normalising file system are an
    /// [`Error::PathCollision`].
    pub async fn plan(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        selection: &Selection,
    ) -> Result<RepoPlan> {
        let before = self.requests_sent();
        let commit = self.pin_revision(repo, revision).await?;
        let (files, listed_files) = self.list_selected(repo, &commit, selection).await?;
        check_path_collisions(files.iter().map(|f| f.path.as_str()))?;
        let total_bytes = files.iter().map(|f| f.size).sum();
        Ok(RepoPlan {
            repo: repo.clone(),
            revision: revision.clone(),
            commit,
            listed_files,
            files,
            total_bytes,
            requests: self.requests_sent() - before,
        })
    }

    /// The next tree page, if any. A link to the endpoint is used verbatim;
    /// a link to an official Hub host from a mirror is asked from the
    /// endpoint (same path and query); anything else is refused.
    pub(super) fn next_page_url(
        &self,
        current: &Url,
        page_headers: &HeaderMap,
    ) -> Result<Option<Url>> {
        let Some(raw) = headers::link_next(page_headers) else {
            return Ok(None);
        };
        let shown = RedactedUrl::new(current.as_str());
        let endpoint = self.endpoint();
        let next = endpoint.keep_prefix(current.join(&raw).map_err(|e| Error::Malformed {
            url: shown.clone(),
            reason: format!("unreadable next-page link: {e}"),
        })?);
        let origin = UrlOrigin::of(&next);
        if origin.as_ref() == Some(endpoint.origin()) {
            return Ok(Some(next));
        }
        if origin.is_some_and(|o| o.is_official_hub()) {
            let mut local = format!("{}{}", endpoint.as_str(), next.path());
            if let Some(query) = next.query() {
                local.push('?');
                local.push_str(query);
            }
            warn!(
                link = %RedactedUrl::new(next.as_str()),
                "the mirror passed the Hub's next-page link through; asking the mirror"
            );
            return Self::parse_url(&local).map(Some);
        }
        Err(Error::IncompleteListing {
            url: shown,
            reason: format!(
                "the next-page link points to {}, which is neither the endpoint nor a Hub host",
                RedactedUrl::new(next.as_str())
            ),
        })
    }
}
