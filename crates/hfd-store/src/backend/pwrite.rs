//! The positioned-write backend (`pwrite`; `seek_write` on Windows).

use std::sync::Arc;

use super::FileWriter;
use crate::partial::Inner;
use crate::{Error, Result, platform};

/// Positioned-write backend.
#[derive(Debug)]
pub(crate) struct PwriteWriter {
    inner: Arc<Inner>,
}

impl PwriteWriter {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }
}

impl FileWriter for PwriteWriter {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.write_parts_at(offset, &[data])
    }

    fn write_parts_at(&mut self, offset: u64, parts: &[&[u8]]) -> Result<()> {
        let len = parts.iter().map(|part| part.len() as u64).sum();
        let Some(range) = self.inner.begin_write(offset, len)? else {
            return Ok(());
        };
        match platform::write_all_parts_at(&self.inner.file, parts, offset) {
            Ok(()) => {
                self.inner.end_write(range, parts);
                self.inner.sync_if_whole();
                Ok(())
            }
            Err(source) => {
                self.inner.abort_write(range);
                Err(Error::Write {
                    path: self.inner.path().to_path_buf(),
                    range,
                    source,
                })
            }
        }
    }

    fn release(&mut self) {}
}
