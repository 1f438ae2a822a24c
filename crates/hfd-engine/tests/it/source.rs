//! An in-memory `RangeSource` whose answers a test scripts per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hfd_engine::{BodyStream, FileKey, RangeSource, SlotId, SourceError};
use hfd_store::ContentHasher;
use hfd_types::{ByteRange, ContentDigest};
use tokio::time::Instant;

/// Deterministic, non-periodic content: byte `i` of file `seed`.
pub(crate) fn content(seed: u64, len: u64) -> Vec<u8> {
    fill(seed, 0, len)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill(seed: u64, start: u64, end: u64) -> Vec<u8> {
    (start..end)
        .map(|i| splitmix(seed.wrapping_mul(1_000_003) ^ (i / 8)).to_le_bytes()[(i % 8) as usize])
        .collect()
}

pub(crate) fn sha256_of(seed: u64, len: u64) -> ContentDigest {
    let mut h = ContentHasher::sha256();
    h.update(&content(seed, len));
    h.finish()
}

pub(crate) fn git_sha1_of(seed: u64, len: u64) -> ContentDigest {
    let mut h = ContentHasher::git_sha1(len);
    h.update(&content(seed, len));
    h.finish()
}

/// One request as the source saw it.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) index: usize,
    pub(crate) key: FileKey,
    /// `None` for a whole-file request.
    pub(crate) range: Option<ByteRange>,
    pub(crate) slot: SlotId,
    pub(crate) at: Instant,
    pub(crate) delivered: Arc<AtomicU64>,
    /// `reset_file` calls for this file before the request (0 on the first
    /// attempt).
    pub(crate) resets: usize,
    /// Bodies open when this request was answered, itself included.
    pub(crate) concurrent: usize,
}

/// Counts an open body; uncounted when the body is dropped.
struct OpenBody(Arc<AtomicUsize>);

impl Drop for OpenBody {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What to do with one request.
#[derive(Debug, Default)]
pub(crate) enum Answer {
    #[default]
    Normal,
    /// Fail before any byte.
    Refuse(SourceError),
    /// Yield `after` bytes, then this error.
    FailAfter(u64, SourceError),
    /// End the body after `after` bytes.
    Short(u64),
    /// Append `extra` garbage bytes after the range.
    Long(u64),
    /// Sleep this long before each chunk.
    Throttle(Duration),
    /// A far server: the response head comes after `head` (a round trip),
    /// then each chunk after `chunk`.
    Far { head: Duration, chunk: Duration },
    /// `burst` bytes at once, then `trickle` bytes every `every`: a
    /// mirror's throttled connection (nginx sends its first 64 KiB at once).
    Burst {
        burst: u64,
        trickle: u64,
        every: Duration,
    },
    /// Sleep this long times the bodies open now before each chunk: a link
    /// whose total rate is capped, shared by every open body.
    SharedLink(Duration),
    /// Yield `after` bytes, then nothing ever again.
    Stall(u64),
    /// The right number of bytes, every one inverted (only the hash tells).
    Corrupt,
}

struct State {
    pos: u64,
    end: u64,
    extra: u64,
    fail: Option<SourceError>,
}

type Script = dyn Fn(&Request) -> Answer + Send + Sync;

pub(crate) struct MemSource {
    files: HashMap<FileKey, (u64, u64)>,
    chunk: u64,
    script: Box<Script>,
    /// Range requests answer "range unsupported"; whole requests work.
    pub(crate) no_ranges: bool,
    count: AtomicUsize,
    log: Mutex<Vec<Request>>,
    resets: Mutex<HashMap<FileKey, usize>>,
    finished: Mutex<Vec<FileKey>>,
    open_bodies: Arc<AtomicUsize>,
}

impl MemSource {
    pub(crate) fn new(files: &[(FileKey, u64, u64)], chunk: u64) -> Self {
        Self {
            files: files
                .iter()
                .map(|(k, size, seed)| (*k, (*size, *seed)))
                .collect(),
            chunk,
            script: Box::new(|_| Answer::Normal),
            no_ranges: false,
            count: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            resets: Mutex::new(HashMap::new()),
            finished: Mutex::new(Vec::new()),
            open_bodies: Arc::default(),
        }
    }

    pub(crate) fn script(mut self, f: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        self.script = Box::new(f);
        self
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// `reset_file` calls for `key` so far.
    pub(crate) fn resets(&self, key: FileKey) -> usize {
        self.resets.lock().unwrap().get(&key).copied().unwrap_or(0)
    }

    /// The files the engine said were done (`finish_file`), in order.
    pub(crate) fn finished(&self) -> Vec<FileKey> {
        self.finished.lock().unwrap().clone()
    }

    /// Bytes delivered (yielded by bodies) on requests that ran on `slot`.
    pub(crate) fn delivered_on(&self, slot: usize) -> u64 {
        self.requests()
            .iter()
            .filter(|r| r.slot == SlotId(slot))
            .map(|r| r.delivered.load(Ordering::Relaxed))
            .sum()
    }

    /// Answers a request: the wait before the response head, and the body.
    fn open(
        &self,
        key: FileKey,
        range: Option<ByteRange>,
        slot: SlotId,
    ) -> (Duration, Result<BodyStream, SourceError>) {
        let mut head = Duration::ZERO;
        let body = self.open_body(key, range, slot, &mut head);
        (head, body)
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one arm per scripted answer, then the body they shape"
    )]
    fn open_body(
        &self,
        key: FileKey,
        range: Option<ByteRange>,
        slot: SlotId,
        head: &mut Duration,
    ) -> Result<BodyStream, SourceError> {
        let (size, seed) = self.files[&key];
        let request = Request {
            index: self.count.fetch_add(1, Ordering::SeqCst),
            key,
            range,
            slot,
            at: Instant::now(),
            delivered: Arc::new(AtomicU64::new(0)),
            resets: self.resets(key),
            concurrent: self.open_bodies.load(Ordering::SeqCst) + 1,
        };
        self.log.lock().unwrap().push(request.clone());
        let answer = (self.script)(&request);
        if range.is_some() && self.no_ranges {
            return Err(SourceError::range_unsupported("200 to a range request"));
        }
        let (start, mut end) = range.map_or((0, size), |r| (r.start(), r.end()));
        let mut extra = 0;
        let mut fail = None;
        let mut stall_at = None;
        let mut delay = Duration::ZERO;
        let mut shared_link = false;
        let mut corrupt = false;
        let mut burst_until = None;
        let mut chunk = self.chunk;
        match answer {
            Answer::Normal => {}
            Answer::Corrupt => corrupt = true,
            Answer::Refuse(e) => return Err(e),
            Answer::FailAfter(n, e) => {
                end = end.min(start + n);
                fail = Some(e);
            }
            Answer::Short(n) => end = end.min(start + n),
            Answer::Long(n) => extra = n,
            Answer::Throttle(d) => delay = d,
            Answer::Far { head: h, chunk } => (*head, delay) = (h, chunk),
            Answer::SharedLink(d) => {
                delay = d;
                shared_link = true;
            }
            Answer::Stall(n) => stall_at = Some(start + n),
            Answer::Burst {
                burst,
                trickle,
                every,
            } => {
                burst_until = Some(start + burst);
                chunk = trickle;
                delay = every;
            }
        }
        let delivered = request.delivered;
        self.open_bodies.fetch_add(1, Ordering::SeqCst);
        let open = OpenBody(Arc::clone(&self.open_bodies));
        let open_bodies = Arc::clone(&self.open_bodies);
        let state = State {
            pos: start,
            end,
            extra,
            fail,
        };
        Ok(futures::stream::unfold(state, move |mut st| {
            let _open = &open;
            let delivered = Arc::clone(&delivered);
            let sharing = if shared_link {
                open_bodies.load(Ordering::SeqCst).max(1) as u32
            } else {
                1
            };
            async move {
                if stall_at.is_some_and(|s| st.pos >= s) {
                    futures::future::pending::<()>().await;
                }
                let bursting = burst_until.filter(|b| st.pos < *b);
                if !delay.is_zero() && bursting.is_none() {
                    tokio::time::sleep(delay * sharing).await;
                }
                let item = if st.pos < st.end {
                    let mut to = bursting.unwrap_or(st.pos + chunk).min(st.end);
                    if let Some(s) = stall_at
                        && st.pos < s
                    {
                        to = to.min(s);
                    }
                    let mut bytes = fill(seed, st.pos, to);
                    if corrupt {
                        for b in &mut bytes {
                            *b = !*b;
                        }
                    }
                    st.pos = to;
                    Ok(Bytes::from(bytes))
                } else if st.extra > 0 {
                    let n = st.extra.min(chunk);
                    st.extra -= n;
                    Ok(Bytes::from(vec![0xEE; n as usize]))
                } else if let Some(e) = st.fail.take() {
                    Err(e)
                } else {
                    return None;
                };
                if let Ok(b) = &item {
                    delivered.fetch_add(b.len() as u64, Ordering::Relaxed);
                }
                Some((item, st))
            }
        })
        .boxed())
    }
}

impl RangeSource for MemSource {
    async fn fetch_range(
        &self,
        key: FileKey,
        range: ByteRange,
        slot: SlotId,
    ) -> Result<BodyStream, SourceError> {
        let (head, body) = self.open(key, Some(range), slot);
        tokio::time::sleep(head).await;
        body
    }

    async fn fetch_whole(&self, key: FileKey, slot: SlotId) -> Result<BodyStream, SourceError> {
        let (head, body) = self.open(key, None, slot);
        tokio::time::sleep(head).await;
        body
    }

    async fn reset_file(&self, key: FileKey) {
        *self.resets.lock().unwrap().entry(key).or_default() += 1;
    }

    async fn finish_file(&self, key: FileKey) {
        self.finished.lock().unwrap().push(key);
    }
}
