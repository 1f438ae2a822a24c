//! What became of each job of a run ([`Outcomes`]), collected while it runs.
//!
//! A file that ends done is counted, not kept: a first download of 10^5
//! files kept one 56-byte slot per file for the whole run (7 MiB once the
//! vector had grown), for outcomes that were nearly all "done".

use crate::job::FileJob;
use crate::progress::FileOutcome;
use crate::source::FileKey;

/// How a file task ended: an outcome, or its job handed back because
/// another process holds its claim.
pub(crate) enum Ran {
    Outcome(FileOutcome),
    Busy(Box<FileJob>),
}

/// The outcomes of a run so far.
#[derive(Default)]
pub(crate) struct Outcomes {
    /// Jobs received (the next one's index, which orders the summary).
    received: usize,
    /// Files that ended done.
    done: usize,
    /// Every other outcome, with its job's index and key.
    others: Vec<(usize, FileKey, FileOutcome)>,
    /// The jobs of the files another process held.
    busy: Vec<FileJob>,
}

impl Outcomes {
    /// The index of the next job received.
    pub(crate) fn receive(&mut self) -> usize {
        self.received += 1;
        self.received - 1
    }

    /// Records how the job `index` (of `key`) ended.
    pub(crate) fn record(&mut self, index: usize, key: FileKey, ran: Ran) {
        match ran {
            Ran::Outcome(FileOutcome::Done { .. }) => self.done += 1,
            Ran::Outcome(outcome) => self.others.push((index, key, outcome)),
            Ran::Busy(job) => {
                self.busy.push(*job);
                self.others.push((index, key, FileOutcome::Busy));
            }
        }
    }

    /// The files that did not end done, in job order; how many did; the
    /// jobs of the busy ones.
    pub(crate) fn finish(mut self) -> (Vec<(FileKey, FileOutcome)>, usize, Vec<FileJob>) {
        self.others.sort_by_key(|(index, ..)| *index);
        let files = self.others.into_iter().map(|(_, k, o)| (k, o)).collect();
        (files, self.done, self.busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_files_are_counted_the_others_kept_in_job_order() {
        let mut outcomes = Outcomes::default();
        let indices: Vec<usize> = (0..4).map(|_| outcomes.receive()).collect();
        outcomes.record(indices[3], FileKey(3), Ran::Outcome(FileOutcome::Cancelled));
        outcomes.record(
            indices[0],
            FileKey(0),
            Ran::Outcome(FileOutcome::Done { digest: None }),
        );
        outcomes.record(
            indices[1],
            FileKey(1),
            Ran::Outcome(FileOutcome::DoneElsewhere),
        );
        outcomes.record(
            indices[2],
            FileKey(2),
            Ran::Outcome(FileOutcome::Done { digest: None }),
        );
        let (files, done, busy) = outcomes.finish();
        assert_eq!(done, 2);
        assert!(busy.is_empty());
        let keys: Vec<u64> = files.iter().map(|(k, _)| k.0).collect();
        assert_eq!(keys, [1, 3]);
        assert!(matches!(files[0].1, FileOutcome::DoneElsewhere));
        assert!(matches!(files[1].1, FileOutcome::Cancelled));
    }
}
