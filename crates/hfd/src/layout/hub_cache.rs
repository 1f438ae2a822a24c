//! The Hugging Face hub cache layout (docs/hub-protocol.md §9), exactly as
//! huggingface_hub writes it, so `from_pretrained(..., local_files_only=True)`,
//! `hf_hub_download`, `try_to_load_from_cache` and `scan_cache_dir()` accept
//! what hfd-rs downloads.
//!
//! ```text
//! <root>/CACHEDIR.TAG
//! <root>/.locks/<folder>/<etag>.lock          flock held while publishing a blob
//! <root>/<folder>/blobs/<etag>                content, named by its etag, shared by revisions
//! <root>/<folder>/blobs/<etag>.hfd.part       our partial file (never `<etag>.incomplete`)
//! <root>/<folder>/blobs/<etag>.hfd.verified   complete and verified, not yet published
//! <root>/<folder>/snapshots/<commit>/<path>   relative symlink to ../../blobs/<etag> (copy without symlinks)
//! <root>/<folder>/refs/<revision>             the bare 40-hex commit, no newline
//! <root>/<folder>/trees/<commit>.json         complete listing (unfiltered runs only)
//! <root>/<folder>/hfd-listing                 a listing in progress (decision 0027)
//! ```
//!
//! `<folder>` is `models--org--name`, `datasets--org--name` or
//! `spaces--org--name`, from the repo id exactly as given.
//!
//! Without symlinks ([`SnapshotEntries::Copies`], what
//! `HF_HUB_DISABLE_SYMLINKS` asks, or when the filesystem refuses them) a
//! newly downloaded blob is moved into the snapshot and an existing one is
//! copied, as huggingface_hub does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hfd_hub::{Commit, RemoteFile, RepoRef, Revision};
use hfd_store::{EntryKind, TargetDir};

use super::contract::{FetchPolicy, FileAction, HubLock, JobPaths, Layout, Publish, PublishItem};
use super::fs::{
    CACHEDIR_TAG, cached_created, cached_existing, copy_within, digest_file, entry_in, read_file,
    repo_rel, safe_join_entry, sibling_name, write_atomic, write_if_missing, write_tree_listing,
};
use super::lock::PublishGuard;
use super::tree_record::TreeRecord;
use crate::error::{Error, Result};

/// Symlink probes made by this process: probe names are unique per probe,
/// not only per process (`hfd-rs serve` pulls several files into one cache
/// at once, and probes sharing names removed each other's files and fell
/// back to copies).
static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How the cache's snapshot folder holds its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotEntries {
    /// Relative symlinks to `blobs/<etag>` (huggingface_hub's default).
    /// Turned into copies when the filesystem refuses symlinks.
    #[default]
    Symlinks,
    /// Copies of the blobs (what `HF_HUB_DISABLE_SYMLINKS=1` asks).
    Copies,
}

/// One repository's folder in a hub cache.
///
/// Everything below the cache root is reached through one handle on the
/// root, following no symbolic link: a link planted at `blobs/`,
/// `snapshots/`, `refs/`, `.locks/` or a folder inside them is refused
/// (exit 8); one planted at a file name only hfd-rs writes (a partial, its
/// journal, a staged blob, a lock, a ref, `CACHEDIR.TAG`) is replaced. The
/// snapshot entries are links we make ourselves: a stale or foreign one is
/// replaced by a rename, never written through.
#[derive(Debug, Clone)]
pub struct CacheRepo {
    root: PathBuf,
    folder: String,
    dir: PathBuf,
    entries: SnapshotEntries,
    handle: OnceLock<TargetDir>,
}

impl CacheRepo {
    /// The folder of `repo` in the cache at `root` (the `HF_HUB_CACHE`
    /// directory). Uses symlinks unless told otherwise.
    pub fn new(root: impl Into<PathBuf>, repo: &RepoRef) -> Self {
        let root = root.into();
        let folder = Self::folder_name(repo);
        Self {
            dir: root.join(&folder),
            root,
            folder,
            entries: SnapshotEntries::Symlinks,
            handle: OnceLock::new(),
        }
    }

    /// Whether snapshot entries are symlinks or copies.
    #[must_use]
    pub fn with_entries(mut self, entries: SnapshotEntries) -> Self {
        self.entries = entries;
        self
    }

    /// `models--org--name`, `datasets--name`, … (huggingface_hub's
    /// `repo_folder_name`).
    pub fn folder_name(repo: &RepoRef) -> String {
        format!(
            "{}s--{}",
            repo.repo_type.as_str(),
            repo.id.as_str().replace('/', "--")
        )
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<folder>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether snapshot entries are symlinks or copies.
    pub fn entries(&self) -> SnapshotEntries {
        self.entries
    }

    /// The cache root's handle, `None` while it does not exist.
    fn existing(&self) -> Result<Option<TargetDir>> {
        cached_existing(&self.root, &self.handle)
    }

    /// The cache root's handle, the folder created when missing.
    fn target(&self) -> Result<TargetDir> {
        cached_created(&self.root, &self.handle)
    }

    /// `<folder>/<sub>`, relative to the root.
    fn rel(&self, sub: &str) -> PathBuf {
        Path::new(&self.folder).join(sub)
    }

    fn blob_rel(&self, etag: &str) -> PathBuf {
        self.rel("blobs").join(etag)
    }

    fn partial_rel(&self, etag: &str) -> PathBuf {
        self.rel("blobs").join(format!("{etag}.hfd.part"))
    }

    fn staged_rel(&self, etag: &str) -> PathBuf {
        self.rel("blobs").join(format!("{etag}.hfd.verified"))
    }

    fn lock_rel(&self, etag: &str) -> PathBuf {
        Path::new(".locks")
            .join(&self.folder)
            .join(format!("{etag}.lock"))
    }

    fn snapshot_rel(&self, commit: &Commit) -> PathBuf {
        self.rel("snapshots").join(commit.as_str())
    }

    fn entry_rel(&self, commit: &Commit, repo_path: &str) -> Result<PathBuf> {
        repo_rel(&self.root, &self.snapshot_rel(commit), repo_path)
    }

    fn ref_rel(&self, revision: &Revision) -> Result<PathBuf> {
        repo_rel(&self.root, &self.rel("refs"), revision.as_str())
    }

    /// `blobs/<etag>`. `etag` is a normalised hex etag
    /// ([`RemoteFile::etag`]).
    pub fn blob_path(&self, etag: &str) -> PathBuf {
        self.root.join(self.blob_rel(etag))
    }

    /// Our partial file for a blob.
    pub fn partial_path(&self, etag: &str) -> PathBuf {
        self.root.join(self.partial_rel(etag))
    }

    /// Where the engine leaves a complete, verified blob before it is
    /// published under the lock.
    pub fn staged_path(&self, etag: &str) -> PathBuf {
        self.root.join(self.staged_rel(etag))
    }

    /// `<root>/.locks/<folder>/<etag>.lock`.
    pub fn lock_path(&self, etag: &str) -> PathBuf {
        self.root.join(self.lock_rel(etag))
    }

    /// `snapshots/<commit>`.
    pub fn snapshot_dir(&self, commit: &Commit) -> PathBuf {
        self.root.join(self.snapshot_rel(commit))
    }

    /// `snapshots/<commit>/<path>`; refuses paths that would leave the
    /// snapshot (the entry itself may be a symlink).
    pub fn snapshot_path(&self, commit: &Commit, repo_path: &str) -> Result<PathBuf> {
        safe_join_entry(&self.snapshot_dir(commit), repo_path)
    }

    /// `refs/<revision>`; a revision with `/` becomes nested folders.
    pub fn ref_path(&self, revision: &Revision) -> Result<PathBuf> {
        Ok(self.root.join(self.ref_rel(revision)?))
    }

    /// The commit `refs/<revision>` holds, read as huggingface_hub reads it
    /// (the whole file, untrimmed).
    pub fn read_ref(&self, revision: &Revision) -> Option<String> {
        let target = self.existing().ok()??;
        String::from_utf8(read_file(&target, &self.ref_rel(revision).ok()?)?).ok()
    }

    /// Points `refs/<revision>` at `commit` (no newline, atomic), only when
    /// it says something else. Nothing for a revision that is a commit.
    /// Returns whether the file was written.
    pub fn write_ref(&self, revision: &Revision, commit: &Commit) -> Result<bool> {
        if revision.as_commit().is_some() {
            return Ok(false);
        }
        let target = self.target()?;
        let rel = self.ref_rel(revision)?;
        if read_file(&target, &rel).is_some_and(|current| current == commit.as_str().as_bytes()) {
            return Ok(false);
        }
        if let Some(parent) = rel.parent() {
            target.create_dir_all(parent)?;
        }
        write_atomic(&target, &rel, commit.as_str().as_bytes())?;
        Ok(true)
    }

    /// Creates the root's `CACHEDIR.TAG` and the repo's `blobs/` and
    /// `snapshots/` folders.
    pub fn prepare(&self) -> Result<()> {
        let target = self.target()?;
        target.create_dir_all(&self.rel("blobs"))?;
        target.create_dir_all(&self.rel("snapshots"))?;
        write_if_missing(&target, Path::new("CACHEDIR.TAG"), CACHEDIR_TAG.as_bytes())
    }

    /// Whether relative symlinks work in `blobs/` the way [`Self::publish`]
    /// uses them: one is created at a temporary name, renamed, read back
    /// and read through. huggingface_hub's `are_symlinks_supported` only
    /// creates one; that is not enough where creation "succeeds" without a
    /// link (wine's `CreateSymbolicLinkW` is a stub that returns success).
    /// Call after [`Self::prepare`].
    pub fn probe_symlinks(&self) -> bool {
        let Ok(target) = self.target() else {
            return false;
        };
        let probe = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = |what: &str| {
            self.rel("blobs").join(format!(
                ".hfd-symlink-probe-{}-{probe}.{what}",
                std::process::id()
            ))
        };
        let (file, made, renamed) = (name("file"), name("made"), name("link"));
        let file_name = file.file_name().map(PathBuf::from).unwrap_or_default();
        let clean = || {
            for rel in [&made, &renamed, &file] {
                let _ = target.remove_file(rel);
            }
        };
        clean();
        let works = || -> Option<()> {
            write_atomic(&target, &file, b"probe").ok()?;
            target.symlink(&file_name, &made).ok()?;
            target.rename(&made, &renamed).ok()?;
            (target.read_link(&renamed).ok()?? == file_name).then_some(())?;
            // Read through, as every program reading the snapshot will.
            (std::fs::read(self.root.join(&renamed)).ok()? == b"probe").then_some(())
        };
        let ok = works().is_some();
        clean();
        ok
    }

    /// Whether `blobs/<etag>` is a regular file (not a link) of `size` bytes.
    pub fn has_blob(&self, etag: &str, size: u64) -> bool {
        let Ok(Some(target)) = self.existing() else {
            return false;
        };
        matches!(target.entry(&self.blob_rel(etag)), Ok(Some(EntryKind::File { len })) if len == size)
    }

    /// Whether `snapshots/<commit>/<path>` is in place: our relative symlink
    /// to the right blob, which is a regular file of `size` bytes, or a
    /// regular file of `size` bytes (a copy; the commit pins its content).
    /// Nothing is followed: the link's text is compared with ours.
    pub fn is_linked(&self, commit: &Commit, file: &RemoteFile) -> bool {
        let Ok(Some(target)) = self.existing() else {
            return false;
        };
        let Ok(entry) = self.entry_rel(commit, &file.path) else {
            return false;
        };
        match target.entry(&entry) {
            Ok(Some(EntryKind::Symlink)) => {
                target.read_link(&entry).ok().flatten()
                    == Some(blob_link_target(&file.path, &file.etag()))
                    && self.has_blob(&file.etag(), file.size)
            }
            Ok(Some(EntryKind::File { len })) => len == file.size,
            _ => false,
        }
    }

    /// Whether `blobs/<etag>` holds exactly `file`'s bytes: the right size
    /// and, hashed, the hub's digest. A blob of the right size is not
    /// enough: one left by a crashed tool or planted in a shared cache
    /// would be linked into the snapshot unverified. Blocking: reads it.
    pub fn has_verified_blob(&self, file: &RemoteFile) -> bool {
        let etag = file.etag();
        if !self.has_blob(&etag, file.size) {
            return false;
        }
        let expected = file.expected_digest();
        let blob = self.blob_path(&etag);
        let Ok(Some(target)) = self.existing() else {
            return false;
        };
        let hashed = digest_file(&target, &self.blob_rel(&etag), &expected, file.size);
        if hashed.as_ref() == Some(&expected) {
            return true;
        }
        tracing::warn!(blob = %blob.display(), file = %file.path,
            "a blob in the cache does not match its hash; downloading it again");
        false
    }

    /// What a run must do with `file` at `commit`. A file whose blob is
    /// already in the cache (another revision has it) is up to date once
    /// the blob's hash matches: it only needs its snapshot entry, no
    /// transfer. An entry of this snapshot already linked to its blob is
    /// trusted without hashing (the blob was checked when it was linked),
    /// so a rerun costs no reading of the whole repository.
    pub fn classify(
        &self,
        commit: &Commit,
        file: &RemoteFile,
        fetch: FetchPolicy,
    ) -> Result<FileAction> {
        let exists = self.snapshot_entry_exists(commit, &file.path)?;
        Ok(
            if fetch == FetchPolicy::SkipUpToDate
                && (self.is_linked(commit, file) || self.has_verified_blob(file))
            {
                FileAction::UpToDate
            } else if exists {
                FileAction::Changed
            } else {
                FileAction::New
            },
        )
    }

    /// Whether anything is at `snapshots/<commit>/<path>` (a link there is
    /// an entry; a link on the way is refused), looked up through the
    /// target's handle rather than by a `statx` of every folder.
    fn snapshot_entry_exists(&self, commit: &Commit, repo_path: &str) -> Result<bool> {
        let rel = self.entry_rel(commit, repo_path)?;
        let Some(target) = self.existing()? else {
            return Ok(false);
        };
        let unsafe_target = || Error::UnsafeTarget {
            path: repo_path.to_owned(),
            root: self.snapshot_dir(commit),
        };
        Ok(entry_in(&target, &rel, unsafe_target)?.is_some())
    }

    /// Publishes the blob shared by `files` (all with the same etag) and
    /// their snapshot entries at `commit`, holding the blob's lock:
    /// `staged` (a verified download) becomes `blobs/<etag>` unless that
    /// already exists (content-addressed, so it is dropped; with
    /// [`FetchPolicy::RefetchAll`] it
    /// replaces it); without `staged` the blob must already exist. Then each
    /// entry is linked (or copied), and its `.no_exist` marker removed.
    /// [`Publish::Busy`], with nothing done, when another process holds the
    /// lock. Blocking.
    pub fn publish(
        &self,
        commit: &Commit,
        files: &[&RemoteFile],
        staged: Option<&Path>,
        fetch: FetchPolicy,
        lock: HubLock,
    ) -> Result<Publish> {
        let Some(first) = files.first() else {
            return Ok(Publish::Done);
        };
        if staged.is_none() && files.iter().all(|f| self.is_linked(commit, f)) {
            return Ok(Publish::Done);
        }
        let target = self.target()?;
        let etag = first.etag();
        let Some(_lock) = PublishGuard::acquire(&target, &self.lock_rel(&etag), lock)? else {
            return Ok(Publish::Busy);
        };
        let blob = self.blob_rel(&etag);
        let mut fresh = false;
        if let Some(staged) = staged {
            let staged = staged
                .strip_prefix(&self.root)
                .map_or_else(|_| self.staged_rel(&etag), Path::to_path_buf);
            // A blob that is already there is kept (content-addressed) only
            // when its hash matches; a verified download replaces one that
            // does not.
            if fetch == FetchPolicy::SkipUpToDate && self.has_verified_blob(first) {
                target.remove_file(&staged)?;
            } else {
                // Replaces whatever is at `blobs/<etag>` (a planted link
                // included), never writes through it.
                target.rename_batched(&staged, &blob)?;
                fresh = true;
            }
        }
        let last = files.len() - 1;
        for (i, file) in files.iter().enumerate() {
            let entry = self.entry_rel(commit, &file.path)?;
            if let Some(parent) = entry.parent() {
                target.create_dir_all(parent)?;
            }
            if self.entries == SnapshotEntries::Symlinks {
                Self::link(&target, &entry, file, &blob)?;
            } else if fresh && i == last {
                // No symlinks: a new blob moves into the snapshot, as
                // huggingface_hub does; earlier entries got copies.
                target.rename_batched(&blob, &entry)?;
            } else {
                copy_within(&target, &blob, &entry)?;
            }
            if let Ok(marker) = repo_rel(
                &self.root,
                &self.rel(".no_exist").join(commit.as_str()),
                &file.path,
            ) && let Err(e) = target.remove_file(&marker)
            {
                // Missing folders or a linked one: no marker of ours there.
                tracing::debug!(error = %e, "no .no_exist marker removed");
            }
        }
        Ok(Publish::Done)
    }

    /// Makes `entry` the relative symlink to `blob` (replacing whatever is
    /// there atomically, a link included, never following it); falls back
    /// to a copy where symlinks fail.
    fn link(target: &TargetDir, entry: &Path, file: &RemoteFile, blob: &Path) -> Result<()> {
        let link = blob_link_target(&file.path, &file.etag());
        if target.read_link(entry).ok().flatten().as_ref() == Some(&link) {
            return Ok(());
        }
        let tmp = sibling_name(entry, &format!(".hfd-link-{}", std::process::id()), 0);
        target.remove_file(&tmp)?;
        match target.symlink(&link, &tmp) {
            Ok(()) => Ok(target.rename_batched(&tmp, entry)?),
            Err(e) => {
                tracing::warn!(entry = %target.display_path(entry).display(), error = %e, "cannot create a symlink; copying the blob instead");
                copy_within(target, blob, entry)
            }
        }
    }

    /// Writes `trees/<commit>.json` when missing. Only call it with the
    /// complete, unfiltered listing of the commit.
    pub fn write_tree(&self, commit: &Commit, listing: &TreeRecord) -> Result<()> {
        write_tree_listing(&self.target()?, Path::new(&self.folder), commit, listing)
    }
}

impl Layout for CacheRepo {
    fn files_dir(&self, commit: &Commit) -> PathBuf {
        self.snapshot_dir(commit)
    }

    fn shares_content(&self) -> bool {
        // Content-addressed blobs: one download per etag.
        true
    }

    fn classify(
        &self,
        commit: &Commit,
        file: &RemoteFile,
        fetch: FetchPolicy,
    ) -> Result<FileAction> {
        CacheRepo::classify(self, commit, file, fetch)
    }

    fn prepare(&self) -> Result<Arc<dyn Layout>> {
        CacheRepo::prepare(self)?;
        if self.entries == SnapshotEntries::Symlinks && !self.probe_symlinks() {
            tracing::warn!(cache = %self.dir.display(), "symlinks are not supported here; snapshot files are copies");
            return Ok(Arc::new(self.clone().with_entries(SnapshotEntries::Copies)));
        }
        Ok(Arc::new(self.clone()))
    }

    fn write_tree(&self, commit: &Commit, listing: &TreeRecord) -> Result<()> {
        CacheRepo::write_tree(self, commit, listing)
    }

    fn listing_state(&self) -> Option<(PathBuf, PathBuf)> {
        Some((
            self.root.clone(),
            Path::new(&self.folder).join("hfd-listing"),
        ))
    }

    fn job_paths(&self, file: &RemoteFile) -> Result<JobPaths> {
        let target = self.target()?;
        let etag = file.etag();
        target.create_dir_all(&self.rel("blobs"))?;
        let partial = self.partial_rel(&etag);
        let staged = self.staged_rel(&etag);
        Ok(JobPaths {
            partial: self.root.join(partial),
            staged: self.root.join(staged),
            target,
        })
    }

    fn lock_path(&self, file: &RemoteFile) -> Result<PathBuf> {
        Ok(CacheRepo::lock_path(self, &file.etag()))
    }

    fn publish(
        &self,
        commit: &Commit,
        item: &PublishItem,
        fetch: FetchPolicy,
        lock: HubLock,
    ) -> Result<Publish> {
        let files: Vec<&RemoteFile> = item.files.iter().collect();
        CacheRepo::publish(self, commit, &files, item.staged.as_deref(), fetch, lock)
    }

    fn finish(&self, revision: &Revision, commit: &Commit) -> Result<()> {
        self.target()?.create_dir_all(&self.snapshot_rel(commit))?;
        if self.write_ref(revision, commit)? {
            tracing::debug!(revision = %revision, commit = %commit, "ref updated");
        }
        Ok(())
    }
}

/// `../../blobs/<etag>` with one more `..` per folder level of `repo_path`:
/// the target huggingface_hub computes with `os.path.relpath`.
fn blob_link_target(repo_path: &str, etag: &str) -> PathBuf {
    let mut target = PathBuf::new();
    for _ in 0..repo_path.matches('/').count() + 2 {
        target.push("..");
    }
    target.push("blobs");
    target.push(etag);
    target
}

#[cfg(all(test, unix))]
fn make_symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(all(test, windows))]
fn make_symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

#[cfg(all(test, not(any(unix, windows))))]
fn make_symlink(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::lock::TargetLock;
    use hfd_hub::RepoId;
    use hfd_types::ContentDigest;
    use std::fs;

    fn file(path: &str, content: &[u8]) -> RemoteFile {
        RemoteFile {
            path: path.to_owned(),
            size: content.len() as u64,
            // The real git blob hash: blobs are adopted only when it matches.
            oid: hfd_store::ContentHasher::digest_like(&ContentDigest::GitSha1([0; 20]), content),
            lfs_sha256: None,
            xet_hash: None,
        }
    }

    fn commit(c: char) -> Commit {
        Commit::parse(&c.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn folder_names_follow_repo_folder_name() {
        let id = |s| RepoId::new(s).unwrap();
        assert_eq!(
            CacheRepo::folder_name(&RepoRef::model(id("openai-community/gpt2"))),
            "models--openai-community--gpt2"
        );
        assert_eq!(
            CacheRepo::folder_name(&RepoRef::model(id("gpt2"))),
            "models--gpt2"
        );
        assert_eq!(
            CacheRepo::folder_name(&RepoRef::dataset(id("allenai/c4"))),
            "datasets--allenai--c4"
        );
        assert_eq!(
            CacheRepo::folder_name(&RepoRef::space(id("org/App"))),
            "spaces--org--App"
        );
    }

    #[test]
    fn link_targets_climb_one_level_per_folder() {
        assert_eq!(
            blob_link_target("config.json", "ab"),
            Path::new("../../blobs/ab")
        );
        assert_eq!(
            blob_link_target("a/b/c.bin", "ab"),
            Path::new("../../../../blobs/ab")
        );
    }

    #[test]
    fn refs_are_bare_commits_written_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let repo = CacheRepo::new(dir.path(), &RepoRef::model(RepoId::new("org/m").unwrap()));
        let main = Revision::new("main").unwrap();
        assert!(repo.write_ref(&main, &commit('a')).unwrap());
        assert_eq!(
            fs::read(repo.ref_path(&main).unwrap()).unwrap(),
            "a".repeat(40).as_bytes()
        );
        assert!(!repo.write_ref(&main, &commit('a')).unwrap());
        assert!(repo.write_ref(&main, &commit('b')).unwrap());
        assert_eq!(repo.read_ref(&main).unwrap(), "b".repeat(40));
        let pr = Revision::new("refs/pr/1").unwrap();
        repo.write_ref(&pr, &commit('c')).unwrap();
        assert!(dir.path().join("models--org--m/refs/refs/pr/1").is_file());
        let sha = Revision::new(&"d".repeat(40)).unwrap();
        assert!(!repo.write_ref(&sha, &commit('d')).unwrap());
        let evil = Revision::new("a/../../../x").unwrap();
        assert!(repo.write_ref(&evil, &commit('a')).is_err());
    }

    #[test]
    fn publish_links_moves_dedups_and_clears_no_exist() {
        let dir = tempfile::tempdir().unwrap();
        let repo = CacheRepo::new(dir.path(), &RepoRef::model(RepoId::new("org/m").unwrap()));
        repo.prepare().unwrap();
        assert!(dir.path().join("CACHEDIR.TAG").is_file());
        let content = b"hello";
        let a = file("a.txt", content);
        let b = file("sub/dir/b.txt", content);
        let c1 = commit('1');
        let marker = repo.dir().join(".no_exist").join(c1.as_str()).join("a.txt");
        fs::create_dir_all(marker.parent().unwrap()).unwrap();
        fs::write(&marker, b"").unwrap();
        let staged = repo.staged_path(&a.etag());
        fs::write(&staged, content).unwrap();
        assert_eq!(
            repo.classify(&c1, &a, FetchPolicy::SkipUpToDate).unwrap(),
            FileAction::New
        );
        assert_eq!(
            repo.publish(
                &c1,
                &[&a, &b],
                Some(&staged),
                FetchPolicy::SkipUpToDate,
                HubLock::Take
            )
            .unwrap(),
            Publish::Done
        );
        assert!(!staged.exists());
        assert!(!marker.exists(), ".no_exist marker removed");
        for f in [&a, &b] {
            let entry = repo.snapshot_path(&c1, &f.path).unwrap();
            assert!(
                fs::symlink_metadata(&entry)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            assert_eq!(fs::read(&entry).unwrap(), content);
            assert!(repo.is_linked(&c1, f));
        }
        assert_eq!(
            fs::read_link(repo.snapshot_path(&c1, "sub/dir/b.txt").unwrap()).unwrap(),
            Path::new("../../../../blobs").join(a.etag())
        );
        // Another commit with the same content: up to date, linked without a
        // download; a second staged copy of an existing blob is dropped.
        let c2 = commit('2');
        assert_eq!(
            repo.classify(&c2, &a, FetchPolicy::SkipUpToDate).unwrap(),
            FileAction::UpToDate
        );
        assert_eq!(
            repo.classify(&c2, &a, FetchPolicy::RefetchAll).unwrap(),
            FileAction::New
        );
        fs::write(&staged, content).unwrap();
        repo.publish(
            &c2,
            &[&a],
            Some(&staged),
            FetchPolicy::SkipUpToDate,
            HubLock::Take,
        )
        .unwrap();
        assert!(!staged.exists());
        assert!(repo.is_linked(&c2, &a));
        // A busy lock: nothing happens.
        let root = TargetDir::open(dir.path()).unwrap();
        let held = TargetLock::try_acquire(&root, &repo.lock_rel(&a.etag()))
            .unwrap()
            .unwrap();
        let c3 = commit('3');
        assert_eq!(
            repo.publish(&c3, &[&a], None, FetchPolicy::SkipUpToDate, HubLock::Take)
                .unwrap(),
            Publish::Busy
        );
        assert!(!repo.snapshot_path(&c3, "a.txt").unwrap().exists());
        drop(held);
        assert_eq!(
            repo.publish(&c3, &[&a], None, FetchPolicy::SkipUpToDate, HubLock::Take)
                .unwrap(),
            Publish::Done
        );
        assert!(repo.is_linked(&c3, &a));
    }

    #[test]
    fn without_symlinks_new_blobs_move_and_existing_ones_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let repo = CacheRepo::new(dir.path(), &RepoRef::dataset(RepoId::new("org/d").unwrap()))
            .with_entries(SnapshotEntries::Copies);
        repo.prepare().unwrap();
        let content = b"data";
        let a = file("a.txt", content);
        let b = file("b/b.txt", content);
        let c1 = commit('1');
        let staged = repo.staged_path(&a.etag());
        fs::write(&staged, content).unwrap();
        repo.publish(
            &c1,
            &[&a, &b],
            Some(&staged),
            FetchPolicy::SkipUpToDate,
            HubLock::Take,
        )
        .unwrap();
        assert!(!repo.blob_path(&a.etag()).exists(), "moved, not kept");
        for f in [&a, &b] {
            let entry = repo.snapshot_path(&c1, &f.path).unwrap();
            assert!(fs::symlink_metadata(&entry).unwrap().is_file());
            assert_eq!(fs::read(&entry).unwrap(), content);
            assert!(repo.is_linked(&c1, f));
        }
        // An existing blob (from a symlinked run) is copied and kept.
        fs::write(repo.blob_path(&a.etag()), content).unwrap();
        let c2 = commit('2');
        repo.publish(&c2, &[&a], None, FetchPolicy::SkipUpToDate, HubLock::Take)
            .unwrap();
        assert!(repo.blob_path(&a.etag()).exists());
        assert_eq!(
            fs::read(repo.snapshot_path(&c2, "a.txt").unwrap()).unwrap(),
            content
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_symlink_probe_uses_links_as_publish_does_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let repo = CacheRepo::new(dir.path(), &RepoRef::model(RepoId::new("org/m").unwrap()));
        repo.prepare().unwrap();
        let blobs = repo.dir().join("blobs");
        // A stale link of a crashed probe is no reason to give up links.
        let stale = blobs.join(".hfd-symlink-probe-1-0.made");
        make_symlink(Path::new("gone"), &stale).unwrap();
        assert!(repo.probe_symlinks());
        assert!(repo.probe_symlinks(), "probe names never collide");
        // Nothing of the probes' own is left (the stale link is not theirs).
        let left: Vec<_> = fs::read_dir(&blobs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left, [stale]);
    }

    #[test]
    fn snapshot_paths_refuse_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let repo = CacheRepo::new(dir.path(), &RepoRef::model(RepoId::new("org/m").unwrap()));
        let c = commit('a');
        for bad in ["../x", "a/../../x", "/etc/passwd", ""] {
            assert!(repo.snapshot_path(&c, bad).is_err(), "{bad:?}");
        }
        // A symlinked folder inside the snapshot is refused; a symlinked
        // entry (ours) is not.
        let snap = repo.snapshot_dir(&c);
        fs::create_dir_all(&snap).unwrap();
        let outside = tempfile::tempdir().unwrap();
        make_symlink(outside.path(), &snap.join("d")).unwrap();
        assert!(repo.snapshot_path(&c, "d/x").is_err());
        assert!(repo.snapshot_path(&c, "d").is_ok());
    }
}
