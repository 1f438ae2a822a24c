//! The files a run fetches, in the order their jobs were made: `FileKey(i)`
//! is the `i`-th. One shared copy read by the source, the publication and
//! a progress display, which grows while the listing is still arriving
//! (decision 0065): its totals are what is known so far, and say whether
//! more may come. A file is forgotten once published (nothing asks for it
//! after), so the list holds the files not done yet, and a count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use hfd_engine::FileKey;
use hfd_hub::RemoteFile;

/// The files to fetch, appended in listing order.
#[derive(Debug, Default)]
pub struct FetchList {
    files: RwLock<Vec<Option<Arc<RemoteFile>>>>,
    bytes: AtomicU64,
    /// Whether the listing is complete: no file will be added.
    complete: AtomicBool,
}

impl FetchList {
    /// A list of `files`, complete when `complete`.
    pub fn new(files: impl IntoIterator<Item = RemoteFile>, complete: bool) -> Self {
        let list = Self::default();
        list.extend(files);
        list.complete.store(complete, Ordering::Release);
        list
    }

    /// Appends `files`; returns the key of the first.
    pub(crate) fn extend(&self, files: impl IntoIterator<Item = RemoteFile>) -> u64 {
        let mut list = self
            .files
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = list.len() as u64;
        for file in files {
            self.bytes.fetch_add(file.size, Ordering::Relaxed);
            list.push(Some(Arc::new(file)));
        }
        first
    }

    /// Says that no file will be added.
    pub(crate) fn close(&self) {
        self.complete.store(true, Ordering::Release);
    }

    /// The file of `key`; `None` once it was published (or never added).
    pub fn get(&self, key: FileKey) -> Option<Arc<RemoteFile>> {
        let index = usize::try_from(key.0).ok()?;
        self.files
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(index)
            .cloned()
            .flatten()
    }

    /// Forgets the file of `key`: it is published, and no one asks for it
    /// any more. Counts and totals are unchanged.
    pub(crate) fn forget(&self, key: FileKey) {
        let Ok(index) = usize::try_from(key.0) else {
            return;
        };
        if let Some(slot) = self
            .files
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(index)
        {
            *slot = None;
        }
    }

    /// Files so far.
    pub fn len(&self) -> usize {
        self.files
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether there is none so far.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Their bytes so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether the listing is complete: [`Self::len`] and [`Self::bytes`]
    /// are the run's totals.
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hfd_types::ContentDigest;

    fn file(path: &str, size: u64) -> RemoteFile {
        RemoteFile {
            path: path.to_owned(),
            size,
            oid: ContentDigest::GitSha1([1; 20]),
            lfs_sha256: None,
            xet_hash: None,
        }
    }

    #[test]
    fn keys_follow_the_order_files_were_added() {
        let list = FetchList::new([file("a", 1)], false);
        assert_eq!(list.extend([file("b", 2), file("c", 3)]), 1);
        assert_eq!(list.get(FileKey(2)).unwrap().path, "c");
        assert!(list.get(FileKey(3)).is_none());
        assert_eq!((list.len(), list.bytes()), (3, 6));
        list.forget(FileKey(1));
        assert!(list.get(FileKey(1)).is_none());
        assert_eq!((list.len(), list.bytes()), (3, 6));
        assert!(!list.is_complete());
        list.close();
        assert!(list.is_complete());
    }
}
