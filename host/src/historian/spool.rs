//! The on-disk spool: batches the database could not take, kept in order until it can.
//!
//! One file per batch, named by a sequence number, written to a temporary name, synced, then
//! renamed: a crash leaves either the whole batch or nothing. Replay takes the oldest first.
//! The total size is capped; a full spool refuses new batches, and the historian then stops
//! acknowledging messages, so the broker keeps them instead.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot use the spool folder {path}: {error}. Check that it exists and is writable")]
    Io { path: PathBuf, error: std::io::Error },
    #[error(
        "the spool in {path} is full ({used} of {cap} bytes): the database has been unreachable \
         for long; raise historian.spool_max_mib or bring the database back"
    )]
    Full { path: PathBuf, used: u64, cap: u64 },
}

/// A batch waiting in the spool.
pub struct SpooledBatch {
    number: u64,
    path: PathBuf,
    pub lines: Vec<String>,
}

pub struct Spool {
    dir: PathBuf,
    cap: u64,
    used: u64,
    /// Sequence numbers of the batches on disk, oldest first.
    batches: std::collections::VecDeque<u64>,
    next: u64,
}

impl Spool {
    /// Opens (or creates) the spool folder and finds the batches a previous run left.
    pub fn open(dir: &Path, cap_bytes: u64) -> Result<Self, SpoolError> {
        let io = |error| SpoolError::Io { path: dir.to_owned(), error };
        fs::create_dir_all(dir).map_err(io)?;
        let mut batches = Vec::new();
        let mut used = 0;
        for entry in fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(number) = name.strip_suffix(".lp").and_then(|n| n.parse::<u64>().ok()) {
                used += entry.metadata().map_err(io)?.len();
                batches.push(number);
            } else if name.ends_with(".tmp") {
                // A batch whose write did not finish: it was never acknowledged, so the broker
                // still has its messages.
                let _ = fs::remove_file(entry.path());
            }
        }
        batches.sort_unstable();
        let next = batches.last().map_or(1, |n| n + 1);
        Ok(Self { dir: dir.to_owned(), cap: cap_bytes, used, batches: batches.into(), next })
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Batches waiting.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a batch at the end; returns once it is on disk.
    pub fn push(&mut self, lines: &[String]) -> Result<(), SpoolError> {
        let mut body = lines.join("\n");
        body.push('\n');
        let size = body.len() as u64;
        if self.used + size > self.cap {
            return Err(SpoolError::Full { path: self.dir.clone(), used: self.used, cap: self.cap });
        }
        let number = self.next;
        let final_path = self.path_of(number);
        let temp = final_path.with_extension("tmp");
        let io = |error| SpoolError::Io { path: self.dir.clone(), error };
        let mut file = fs::File::create(&temp).map_err(io)?;
        file.write_all(body.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&temp, &final_path).map_err(io)?;
        // The rename itself must survive a power cut.
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        self.used += size;
        self.batches.push_back(number);
        self.next += 1;
        Ok(())
    }

    /// The oldest batch, left in place until [`Spool::remove`].
    pub fn oldest(&self) -> Result<Option<SpooledBatch>, SpoolError> {
        let Some(&number) = self.batches.front() else { return Ok(None) };
        let path = self.path_of(number);
        let text = fs::read_to_string(&path).map_err(|error| SpoolError::Io { path: path.clone(), error })?;
        let lines = text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
        Ok(Some(SpooledBatch { number, path, lines }))
    }

    /// Deletes a batch once the database has it.
    pub fn remove(&mut self, batch: SpooledBatch) -> Result<(), SpoolError> {
        let size = fs::metadata(&batch.path).map(|m| m.len()).unwrap_or(0);
        fs::remove_file(&batch.path).map_err(|error| SpoolError::Io { path: batch.path.clone(), error })?;
        self.used = self.used.saturating_sub(size);
        self.batches.retain(|&n| n != batch.number);
        Ok(())
    }

    fn path_of(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:020}.lp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("garonne-spool-{}-{label}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn lines(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| format!("m v={i} {i}")).collect()
    }

    #[test]
    fn batches_come_back_in_order_after_a_restart() {
        let dir = dir("order");
        let mut spool = Spool::open(&dir, 1 << 20).expect("open");
        spool.push(&lines(0..3)).expect("push");
        spool.push(&lines(3..5)).expect("push");
        std::fs::write(dir.join("00000000000000000003.tmp"), "half a batch").expect("write");
        drop(spool);
        let mut spool = Spool::open(&dir, 1 << 20).expect("reopen");
        assert_eq!(spool.len(), 2);
        assert!(!dir.join("00000000000000000003.tmp").exists(), "an unfinished batch is dropped");
        let first = spool.oldest().expect("read").expect("a batch");
        assert_eq!(first.lines, lines(0..3));
        spool.remove(first).expect("remove");
        spool.push(&lines(5..6)).expect("push after reopen");
        let second = spool.oldest().expect("read").expect("a batch");
        assert_eq!(second.lines, lines(3..5));
        spool.remove(second).expect("remove");
        assert_eq!(spool.oldest().expect("read").expect("a batch").lines, lines(5..6));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_spool_refuses_and_says_why() {
        let dir = dir("full");
        let mut spool = Spool::open(&dir, 30).expect("open");
        spool.push(&lines(0..2)).expect("fits");
        let error = spool.push(&lines(2..4)).expect_err("over the cap").to_string();
        assert!(error.contains("spool_max_mib"), "{error}");
        assert_eq!(spool.len(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
