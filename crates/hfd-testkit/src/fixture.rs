//! Repository fixtures: what a fake repo contains before the hub starts, and
//! changes pushed while it runs.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::content::{Source, seeded_bytes};

/// Hub repository type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepoType {
    /// A model repo: resolve URLs have no prefix.
    Model,
    /// A dataset repo: resolve URLs start with `datasets/`.
    Dataset,
    /// A space repo: resolve URLs start with `spaces/`.
    Space,
}

impl RepoType {
    /// Plural used in API URLs: `models`, `datasets`, `spaces`.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Model => "models",
            Self::Dataset => "datasets",
            Self::Space => "spaces",
        }
    }

    /// Prefix of resolve URLs: `""`, `"datasets/"`, `"spaces/"`.
    pub fn resolve_prefix(self) -> &'static str {
        match self {
            Self::Model => "",
            Self::Dataset => "datasets/",
            Self::Space => "spaces/",
        }
    }

    /// Singular name as huggingface_hub spells it (`model`, `dataset`, `space`).
    pub fn singular(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Dataset => "dataset",
            Self::Space => "space",
        }
    }

    pub(crate) fn from_plural(s: &str) -> Option<Self> {
        match s {
            "models" => Some(Self::Model),
            "datasets" => Some(Self::Dataset),
            "spaces" => Some(Self::Space),
            _ => None,
        }
    }
}

/// Who may read a repo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// Only tokens registered with [`crate::FakeHubBuilder::token`]; others get `RepoNotFound`.
    Private,
    /// Metadata and listings are public; file downloads need a token registered with
    /// [`crate::FakeHubBuilder::token`] (anonymous: 401 `GatedRepo`, other tokens: 403 `GatedRepo`).
    Gated,
}

/// One file of a fixture before hashing.
#[derive(Clone, Debug)]
pub(crate) struct FileSpec {
    pub(crate) source: Source,
    pub(crate) is_lfs: bool,
}

/// What a fake repo holds at its first commit on `main`.
///
/// Every repo also gets a tag `v1.0` on that first commit and a pull request
/// `refs/pr/1` whose commit adds one file (`PR_1.md`) on top of it, so tests
/// can exercise revision encoding (`refs%2Fpr%2F1`).
#[derive(Clone, Debug)]
pub struct RepoFixture {
    pub(crate) id: String,
    pub(crate) repo_type: RepoType,
    pub(crate) access: Access,
    pub(crate) files: Vec<(String, FileSpec)>,
    pub(crate) dirs: Vec<PathBuf>,
    pub(crate) tags: Vec<String>,
}

impl RepoFixture {
    fn new(id: &str, repo_type: RepoType) -> Self {
        Self {
            id: id.to_owned(),
            repo_type,
            access: Access::Public,
            files: Vec::new(),
            dirs: Vec::new(),
            tags: vec!["v1.0".to_owned()],
        }
    }

    /// An empty public model repo (`org/name` or a bare legacy `name`).
    pub fn model(id: &str) -> Self {
        Self::new(id, RepoType::Model)
    }

    /// An empty public dataset repo.
    pub fn dataset(id: &str) -> Self {
        Self::new(id, RepoType::Dataset)
    }

    /// An empty public space repo.
    pub fn space(id: &str) -> Self {
        Self::new(id, RepoType::Space)
    }

    /// A small model: `config.json`, `README.md`, `tokenizer/tokenizer.json` (regular) and
    /// `model.safetensors` (LFS, `lfs_size` seeded bytes).
    pub fn synthetic_model(id: &str, lfs_size: u64, seed: u64) -> Self {
        Self::model(id)
            .regular_file(
                "config.json",
                format!("{{\"model_type\": \"fake\", \"seed\": {seed}}}\n"),
            )
            .regular_file("README.md", format!("# {id}\n\nA fake model.\n"))
            .regular_file("tokenizer/tokenizer.json", seeded_text(seed ^ 0x70, 3000))
            .lfs_file("model.safetensors", lfs_size, seed)
    }

    /// A dataset of `n_files` small files (1–64 KiB) in nested folders, named from `seed`.
    ///
    /// The first files have names that need percent-encoding (spaces, `#`, `+`, `?`, `%`,
    /// non-ASCII); every tenth file is an LFS `.parquet` file; the rest are regular
    /// `.jsonl` shards under `data/<split>/`.
    pub fn synthetic_dataset(id: &str, n_files: usize, seed: u64) -> Self {
        Self::dataset_of(id, n_files, seed, None)
    }

    /// The same names as [`Self::synthetic_dataset`], every file 1 KiB to `max_len` bytes of
    /// generated content that is never held in memory: for datasets of 10^5 files.
    pub fn synthetic_dataset_generated(id: &str, n_files: usize, max_len: u64, seed: u64) -> Self {
        Self::dataset_of(id, n_files, seed, Some(max_len.max(1025)))
    }

    fn dataset_of(id: &str, n_files: usize, seed: u64, generated_max: Option<u64>) -> Self {
        const SPECIAL: [&str; 6] = [
            "README.md",
            "odd names/my file+1#?.txt",
            "a b+#.bin",
            "données/ü.txt",
            "100%/深い/文件.json",
            "nested/deeper/still/x.txt",
        ];
        let mut fixture = Self::dataset(id);
        let max_len = generated_max.unwrap_or(64 * 1024);
        fixture.files.reserve(n_files);
        for i in 0..n_files {
            let file_seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            let len = 1024 + seeded_word_for(file_seed) % (max_len - 1024);
            let (path, is_lfs) = if let Some(name) = SPECIAL.get(i) {
                ((*name).to_owned(), false)
            } else if i % 10 == 9 {
                (format!("data/parquet/part-{i:05}.parquet"), true)
            } else {
                let split = ["train", "test", "validation"][i % 3];
                (format!("data/{split}/shard-{i:05}.jsonl"), false)
            };
            let len = if SPECIAL.get(i).is_some() {
                len.min(8192)
            } else {
                len
            };
            let source = match generated_max {
                Some(_) => Source::Seeded {
                    seed: file_seed,
                    len,
                },
                None if is_lfs => Source::Seeded {
                    seed: file_seed,
                    len,
                },
                None => Source::Bytes(seeded_text(file_seed, len as usize).into()),
            };
            // Names are unique by construction: no search of the files added so far
            // (`push` is quadratic over 10^5 files).
            fixture.files.push((path, FileSpec { source, is_lfs }));
        }
        fixture
    }

    /// A folder on disk served as a repo: every file below `dir` (skipping `.git`) becomes a
    /// file; LFS if its extension is a typical weight/data format or it is larger than 10 MiB.
    /// Files are read when the hub starts (hashed once) and then on demand per request.
    pub fn from_dir(id: &str, dir: impl AsRef<Path>) -> Self {
        let mut fixture = Self::model(id);
        fixture.dirs.push(dir.as_ref().to_path_buf());
        fixture
    }

    /// Changes the repo type (e.g. to serve a folder as a dataset).
    #[must_use]
    pub fn repo_type(mut self, repo_type: RepoType) -> Self {
        self.repo_type = repo_type;
        self
    }

    /// Adds a regular (git) file held in memory.
    #[must_use]
    pub fn regular_file(mut self, path: &str, content: impl Into<Bytes>) -> Self {
        self.push(path, Source::Bytes(content.into()), false);
        self
    }

    /// Adds an LFS file of `len` seeded bytes (generated on demand, never held in memory).
    #[must_use]
    pub fn lfs_file(mut self, path: &str, len: u64, seed: u64) -> Self {
        self.push(path, Source::Seeded { seed, len }, true);
        self
    }

    /// Adds an LFS file with the given in-memory content.
    #[must_use]
    pub fn lfs_bytes(mut self, path: &str, content: impl Into<Bytes>) -> Self {
        self.push(path, Source::Bytes(content.into()), true);
        self
    }

    /// Adds a regular (git) file of `len` seeded bytes (not held in memory).
    #[must_use]
    pub fn seeded_regular_file(mut self, path: &str, len: u64, seed: u64) -> Self {
        self.push(path, Source::Seeded { seed, len }, false);
        self
    }

    /// Makes the repo private.
    #[must_use]
    pub fn private(mut self) -> Self {
        self.access = Access::Private;
        self
    }

    /// Makes the repo gated.
    #[must_use]
    pub fn gated(mut self) -> Self {
        self.access = Access::Gated;
        self
    }

    /// Adds a tag on the first commit (`v1.0` always exists).
    #[must_use]
    pub fn tag(mut self, name: &str) -> Self {
        self.tags.push(name.to_owned());
        self
    }

    /// The repo id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn push(&mut self, path: &str, source: Source, is_lfs: bool) {
        self.files.retain(|(p, _)| p != path);
        self.files
            .push((path.to_owned(), FileSpec { source, is_lfs }));
    }
}

/// A new commit on `main`: files to add or replace, and files to delete.
#[derive(Clone, Debug, Default)]
pub struct CommitChange {
    pub(crate) message: String,
    pub(crate) upserts: Vec<(String, FileSpec)>,
    pub(crate) deletes: Vec<String>,
}

impl CommitChange {
    /// An empty change with a commit message.
    pub fn new(message: &str) -> Self {
        Self {
            message: message.to_owned(),
            ..Self::default()
        }
    }

    /// Adds or replaces a regular file.
    #[must_use]
    pub fn regular_file(mut self, path: &str, content: impl Into<Bytes>) -> Self {
        self.upserts.push((
            path.to_owned(),
            FileSpec {
                source: Source::Bytes(content.into()),
                is_lfs: false,
            },
        ));
        self
    }

    /// Adds or replaces an LFS file of `len` seeded bytes.
    #[must_use]
    pub fn lfs_file(mut self, path: &str, len: u64, seed: u64) -> Self {
        self.upserts.push((
            path.to_owned(),
            FileSpec {
                source: Source::Seeded { seed, len },
                is_lfs: true,
            },
        ));
        self
    }

    /// Deletes a file.
    #[must_use]
    pub fn delete(mut self, path: &str) -> Self {
        self.deletes.push(path.to_owned());
        self
    }
}

/// What the hub publishes for one file at one commit: the values a client should end
/// up with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Path inside the repo, `/`-separated.
    pub path: String,
    /// Content size in bytes.
    pub size: u64,
    /// Git object id (tree `oid`): blob sha1 of the content, or of the LFS pointer.
    pub oid: String,
    /// SHA-256 of the content for LFS files (tree `lfs.oid`).
    pub lfs_sha256: Option<String>,
}

impl FileInfo {
    /// The normalized ETag of the resolve endpoint: `lfs_sha256` for LFS files, else `oid`.
    pub fn etag(&self) -> &str {
        self.lfs_sha256.as_deref().unwrap_or(&self.oid)
    }

    /// Whether the file is stored in LFS.
    pub fn is_lfs(&self) -> bool {
        self.lfs_sha256.is_some()
    }
}

fn seeded_word_for(seed: u64) -> u64 {
    let b = seeded_bytes(seed, 8);
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// Printable pseudo-random text (JSON lines) of exactly `len` bytes.
fn seeded_text(seed: u64, len: usize) -> Vec<u8> {
    let raw = seeded_bytes(seed, len);
    let mut out: Vec<u8> = raw.iter().map(|b| b'a' + (b % 26)).collect();
    for (i, b) in out.iter_mut().enumerate() {
        if i % 64 == 63 {
            *b = b'\n';
        }
    }
    out
}
