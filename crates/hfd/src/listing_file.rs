//! Where a listing in progress is kept between runs (decision 0027): one
//! file in the target's metadata folder (`.cache/huggingface/hfd-listing`
//! in a local dir, `<repo folder>/hfd-listing` in the hub cache), reached
//! through the target's handle like every other file of ours. What the
//! bytes say is the hub client's business (`hfd_hub::ListingStore`).

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};

use hfd_store::{OpenMode, TargetDir};

use crate::layout::fs::{cached_created, cached_existing, read_file};

/// The listing file of one target.
#[derive(Debug)]
pub(crate) struct ListingFile {
    root: PathBuf,
    rel: PathBuf,
    handle: OnceLock<TargetDir>,
    /// Open for appending once [`start`](hfd_hub::ListingStore::start) wrote it.
    file: Mutex<Option<std::fs::File>>,
}

impl ListingFile {
    /// The file `rel` below the target folder `root`.
    pub(crate) fn new(root: PathBuf, rel: PathBuf) -> Self {
        Self {
            root,
            rel,
            handle: OnceLock::new(),
            file: Mutex::new(None),
        }
    }

    fn start_file(&self, bytes: &[u8]) -> crate::Result<()> {
        let target = cached_created(&self.root, &self.handle)?;
        if let Some(parent) = self.rel.parent() {
            target.create_dir_all(parent)?;
        }
        // A link planted at our name is removed, never written through.
        let mut file = target.open_own_file(&self.rel, OpenMode::Truncate)?;
        file.write_all(bytes).map_err(|source| crate::Error::Io {
            action: "cannot write",
            path: target.display_path(&self.rel),
            source,
        })?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = Some(file);
        Ok(())
    }
}

impl hfd_hub::ListingStore for ListingFile {
    fn load(&self) -> Option<Vec<u8>> {
        let target = cached_existing(&self.root, &self.handle).ok()??;
        read_file(&target, &self.rel)
    }

    fn start(&self, bytes: &[u8]) -> io::Result<()> {
        self.start_file(bytes)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        match self
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(file) => file.write_all(bytes),
            None => Err(io::Error::other("the listing file was not started")),
        }
    }

    fn remove(&self) {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Ok(Some(target)) = cached_existing(&self.root, &self.handle) {
            let _ = target.remove_file(&self.rel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hfd_hub::ListingStore;

    #[test]
    fn written_appended_read_back_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let rel = PathBuf::from(".cache/huggingface/hfd-listing");
        let file = ListingFile::new(dir.path().join("target"), rel.clone());
        assert_eq!(file.load(), None);
        assert!(file.append(b"x").is_err(), "nothing to append to yet");
        file.start(b"head\n").unwrap();
        file.append(b"page 1\n").unwrap();
        let again = ListingFile::new(dir.path().join("target"), rel);
        assert_eq!(again.load().as_deref(), Some(&b"head\npage 1\n"[..]));
        // A new start replaces what was there.
        again.start(b"other\n").unwrap();
        assert_eq!(file.load().as_deref(), Some(&b"other\n"[..]));
        file.remove();
        assert_eq!(again.load(), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let root = dir.path().join("target");
        std::fs::create_dir_all(root.join(".cache/huggingface")).unwrap();
        let rel = PathBuf::from(".cache/huggingface/hfd-listing");
        std::os::unix::fs::symlink(&victim, root.join(&rel)).unwrap();
        let file = ListingFile::new(root.clone(), rel.clone());
        assert_eq!(file.load(), None, "a link is not read through");
        file.start(b"head\n").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(root.join(&rel)).unwrap(), b"head\n");
    }
}
