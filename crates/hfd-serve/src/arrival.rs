//! A file being pulled from upstream, followed as its bytes land: clients
//! asking for it while the pull runs are answered at once and get each
//! piece as soon as the engine has written it ([`Reporter::on_written`]),
//! instead of waiting for the whole file.
//!
//! Never a complete answer of unverified bytes: the last piece of every
//! answer is held back until the file passed its hash and is published; if
//! it fails, the answer breaks off (the client sees a short transfer and
//! retries, never wrong content under a full length).

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use hfd::hfd_engine::{Error as EngineError, FileKey, Reporter};
use hfd_store::RangeSet;
use hfd_types::{ByteRange, ContentDigest};
use http_body_util::{BodyExt as _, StreamBody};
use tokio::sync::watch;

use crate::body::{CHUNK, ResBody, read_chunk};

/// Where the pull stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Bytes are landing; `written` says which.
    Running,
    /// The engine resumed an earlier partial: which of its bytes are there
    /// is not reported, so readers wait for the end.
    Opaque,
    /// Verified and published under the final name.
    Done,
    /// The pull failed.
    Failed,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    written: RangeSet,
    /// Bumped when the file restarts from zero after a bad hash: an answer
    /// begun in an earlier attempt may hold bytes that are not the file's.
    attempt: u32,
}

/// One file's pull, shared by the download's reporter and every answer
/// that follows it.
#[derive(Debug)]
pub(crate) struct Arrival {
    state: Mutex<State>,
    changed: watch::Sender<()>,
    /// Where the bytes may be, most finished first: the blob, the
    /// verified-but-unpublished name, the partial.
    places: [PathBuf; 3],
    /// The snapshot entry: where the blob went when snapshots hold copies.
    snapshot: Option<PathBuf>,
}

impl Arrival {
    pub(crate) fn new(
        partial: PathBuf,
        staged: PathBuf,
        blob: PathBuf,
        snapshot: Option<PathBuf>,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                phase: Phase::Running,
                written: RangeSet::new(),
                attempt: 0,
            }),
            changed: watch::Sender::new(()),
            places: [blob, staged, partial],
            snapshot,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state());
        self.changed.send_replace(());
    }

    /// The pull ended: `ok` when the file is verified and published.
    pub(crate) fn finish(&self, ok: bool) {
        self.update(|s| s.phase = if ok { Phase::Done } else { Phase::Failed });
    }

    /// Whether the pull has ended (well or not).
    pub(crate) fn is_over(&self) -> bool {
        matches!(self.state().phase, Phase::Done | Phase::Failed)
    }

    /// Waits until the first bytes landed or the pull ended, so a pull
    /// that fails at once is answered with its error, not a broken body.
    pub(crate) async fn started(&self) {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let s = self.state();
                if s.phase != Phase::Running || !s.written.is_empty() {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until `piece` may be read: written in this run (and, when
    /// `last`, the whole file verified), or the file done.
    async fn ready(&self, attempt: u32, piece: ByteRange, last: bool) -> io::Result<()> {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let s = self.state();
                if s.attempt != attempt {
                    return Err(broken());
                }
                match s.phase {
                    Phase::Done => return Ok(()),
                    Phase::Failed => return Err(broken()),
                    Phase::Running if !last && s.written.contains_range(piece) => return Ok(()),
                    Phase::Running | Phase::Opaque => {}
                }
            }
            if rx.changed().await.is_err() {
                return Err(broken());
            }
        }
    }

    /// The file, opened where it is now (renames keep an open file valid,
    /// so it is opened once per answer).
    fn open(&self) -> io::Result<File> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the pulled file is gone");
        let done = self.state().phase == Phase::Done;
        let places = self
            .places
            .iter()
            .chain(self.snapshot.iter().filter(|_| done));
        for place in places {
            match File::open(place) {
                Ok(f) => return Ok(f),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `[start, start + len)` of the file as a body that sends each piece
    /// once it has landed.
    pub(crate) fn body(self: &Arc<Self>, start: u64, len: u64) -> ResBody {
        let this = Arc::clone(self);
        let attempt = self.state().attempt;
        let stream =
            futures::stream::unfold((start, len, None::<Arc<File>>), move |(pos, left, file)| {
                let this = Arc::clone(&this);
                async move {
                    if left == 0 {
                        return None;
                    }
                    let want = left.min(CHUNK as u64);
                    let piece = ByteRange::with_len(pos, want)?;
                    let read = async {
                        this.ready(attempt, piece, want == left).await?;
                        let file = if let Some(f) = file {
                            f
                        } else {
                            let this = Arc::clone(&this);
                            Arc::new(blocking(move || this.open()).await?)
                        };
                        let reader = Arc::clone(&file);
                        let chunk =
                            blocking(move || read_chunk(&reader, pos, want as usize)).await?;
                        // A restart between the check and the read may have
                        // put other bytes there: check again.
                        if this.state().attempt != attempt {
                            return Err(broken());
                        }
                        Ok::<(Bytes, Arc<File>), io::Error>((chunk, file))
                    };
                    match read.await {
                        Ok((chunk, file)) => Some((
                            Ok(http_body::Frame::data(chunk)),
                            (pos + want, left - want, Some(file)),
                        )),
                        Err(e) => Some((Err(e), (pos, 0, None))),
                    }
                }
            });
        StreamBody::new(stream).boxed_unsync()
    }
}

fn broken() -> io::Error {
    io::Error::other("the upstream pull of this file failed")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// The engine's progress for a one-file pull, fed into its [`Arrival`].
pub(crate) struct ArrivalReporter(pub(crate) Arc<Arrival>);

impl Reporter for ArrivalReporter {
    fn on_written(&self, _key: FileKey, range: ByteRange) {
        self.0.update(|s| s.written.insert(range));
    }
    fn on_file_resumed(&self, _key: FileKey, bytes: u64) {
        if bytes > 0 {
            self.0.update(|s| {
                if s.phase == Phase::Running {
                    s.phase = Phase::Opaque;
                }
            });
        }
    }
    fn on_file_restart(&self, _key: FileKey, _attempt: u32, _cause: &EngineError) {
        self.0.update(|s| {
            s.attempt += 1;
            s.written = RangeSet::new();
            s.phase = Phase::Running;
        });
    }
    fn on_file_done(&self, _key: FileKey, _digest: Option<ContentDigest>) {
        // Verified; published by the time the download returns, which
        // `finish` reports.
    }
}
