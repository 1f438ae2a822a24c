//! What opening a partial file found: whether its journal was resumed,
//! started fresh or discarded, and why.

use std::fmt;
use std::fs::File;
use std::path::Path;

use crate::journal::{
    DecodedJournal, FileIdentity, HeaderDefect, JournalHeader, RecordDefect, decode,
};
use crate::target_dir::{OpenMode, TargetDir};
use crate::{Error, RangeSet, Result};

/// What [`PartialFile::open_or_create`](crate::PartialFile::open_or_create) found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resume {
    /// Bytes already durable according to the journal (empty when starting
    /// from zero). The inline hash has been rebuilt over their contiguous
    /// prefix.
    pub ranges: RangeSet,
    /// What happened to the journal.
    pub journal: JournalState,
}

/// The fate of a partial file's journal when it was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalState {
    /// No journal asked for: the partial starts from zero, unjournaled.
    Off,
    /// No journal existed: a new one was started with the partial.
    Fresh,
    /// The journal was valid and matched: its ranges are kept.
    Resumed {
        /// Bytes of torn or zeroed tail that were dropped.
        dropped_bytes: u64,
        /// Why the tail was dropped, when it was.
        tail_defect: Option<RecordDefect>,
    },
    /// A journal existed but was not usable; the partial starts from zero
    /// with a new journal. A `warn` event says why.
    Discarded(DiscardReason),
}

/// Why an existing journal was not resumed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscardReason {
    /// Its header is unreadable (truncated, zeroed, corrupt, newer version).
    Unreadable(HeaderDefect),
    /// It describes other content (size or content id differ).
    IdentityMismatch {
        /// The identity the journal holds.
        found: Box<FileIdentity>,
    },
    /// The partial file it describes is gone.
    PartialMissing,
    /// The partial file has another length than the file's size.
    PartialSize {
        /// The partial's length on disk.
        actual: u64,
    },
}

impl fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(defect) => write!(f, "{defect}"),
            Self::IdentityMismatch { found } => write!(
                f,
                "journal is for other content ({} bytes, etag {})",
                found.size, found.etag
            ),
            Self::PartialMissing => f.write_str("the partial file it describes is missing"),
            Self::PartialSize { actual } => {
                write!(
                    f,
                    "the partial file has an unexpected length ({actual} bytes)"
                )
            }
        }
    }
}

/// Decides whether the journal at `jpath` can be resumed for the partial at
/// `path` (whose length before opening was `previous_len`).
pub(crate) fn inspect_journal(
    path: &Path,
    dir: &TargetDir,
    jrel: &Path,
    header: &JournalHeader,
    previous_len: Option<u64>,
    size: u64,
) -> Result<(JournalState, Option<(File, DecodedJournal)>)> {
    let jpath = dir.display_path(jrel);
    let Some((jfile, bytes)) = read_journal(dir, jrel)? else {
        return Ok((JournalState::Fresh, None));
    };
    let verdict = match decode(&bytes) {
        Err(defect) => Err(DiscardReason::Unreadable(defect)),
        Ok(d) if !d.header.identity.same_content(&header.identity) => {
            Err(DiscardReason::IdentityMismatch {
                found: Box::new(d.header.identity.clone()),
            })
        }
        Ok(d) => match previous_len {
            None => Err(DiscardReason::PartialMissing),
            Some(actual) if actual != size => Err(DiscardReason::PartialSize { actual }),
            Some(_) => Ok(d),
        },
    };
    match verdict {
        Ok(decoded) => Ok((JournalState::Fresh, Some((jfile, decoded)))),
        Err(reason) => {
            tracing::warn!(
                file = %path.display(),
                journal = %jpath.display(),
                %reason,
                "resume journal discarded; the file starts from zero"
            );
            Ok((JournalState::Discarded(reason), None))
        }
    }
}

/// Reads the journal at `jrel`, `None` when there is none. The handle is
/// kept for appending when the journal is resumed.
fn read_journal(dir: &TargetDir, jrel: &Path) -> Result<Option<(File, Vec<u8>)>> {
    let file = match dir.open_file(jrel, OpenMode::ReadWrite) {
        Ok(f) => f,
        Err(Error::Dir { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        // A link or special file planted at the journal's name describes
        // nothing of ours: removed (not followed), the partial starts over.
        Err(e) => {
            return if dir.clear_planted(jrel)? {
                Ok(None)
            } else {
                Err(journal_err(e, "cannot open"))
            };
        }
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|source| Error::Journal {
        path: dir.display_path(jrel),
        action: "cannot read",
        source,
    })?;
    Ok(Some((file, bytes)))
}

/// Removes a journal left next to a partial that is about to be truncated
/// (a link planted there is removed, not followed).
pub(crate) fn remove_stale(dir: &TargetDir, jrel: &Path) -> Result<()> {
    if dir
        .remove_file(jrel)
        .map_err(|e| journal_err(e, "cannot remove"))?
    {
        tracing::debug!(journal = %dir.display_path(jrel).display(), "stale journal removed");
    }
    Ok(())
}

/// A target-folder I/O error about a journal, as a journal error (links are
/// reported as such).
pub(crate) fn journal_err(err: Error, action: &'static str) -> Error {
    match err {
        Error::Dir { path, source, .. } => Error::Journal {
            path,
            action,
            source,
        },
        other => other,
    }
}
