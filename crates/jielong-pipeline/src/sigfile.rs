//! Signature files: what a dedup stage's map step writes per shard and its reduce step merges.
//!
//! A dedup stage sorts every document into one or more *channels* (one per MinHash band, one
//! for exact hashes, one for line hashes) as `(key, id)` pairs. Each shard's file holds every
//! channel's pairs sorted, so the reduce step reads a channel of all shards as one sorted
//! stream by a k-way merge: memory holds one buffered reader per shard and whatever the
//! caller keeps about duplicates, never the whole corpus's signatures.
//!
//! Layout (little-endian u64s): the magic `JLSIG002`, the number of channels `c`, the number
//! of pairs in each channel, then each channel's pairs in order.

use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"JLSIG002";

/// One shard's `(key, id)` pairs, per channel, before sorting.
#[derive(Debug, Default)]
pub struct Signatures {
    channels: Vec<Vec<(u64, u64)>>,
}

impl Signatures {
    pub fn push(&mut self, channel: usize, key: u64, id: u64) {
        if self.channels.len() <= channel {
            self.channels.resize_with(channel + 1, Vec::new);
        }
        self.channels[channel].push((key, id));
    }

    /// Sort every channel and write the file (to a temporary name, then renamed).
    /// `n_channels` is the stage's count, so a shard with no documents still says it.
    pub fn write(mut self, path: &Path, n_channels: usize) -> Result<()> {
        self.channels.resize_with(n_channels.max(self.channels.len()), Vec::new);
        let tmp = path.with_extension("bin.tmp");
        let file = std::fs::File::create(&tmp).at(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let put = |w: &mut BufWriter<std::fs::File>, v: u64| w.write_all(&v.to_le_bytes()).at(&tmp);
        w.write_all(MAGIC).at(&tmp)?;
        put(&mut w, self.channels.len() as u64)?;
        for ch in &self.channels {
            put(&mut w, ch.len() as u64)?;
        }
        for ch in &mut self.channels {
            ch.sort_unstable();
            for &(k, id) in ch.iter() {
                put(&mut w, k)?;
                put(&mut w, id)?;
            }
        }
        let file = w.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().at(&tmp)?;
        std::fs::rename(&tmp, path).at(path)
    }
}

fn truncated(path: &Path) -> Error {
    Error::format(path, "not a complete signature file of this version; delete the run's work/ folder and run again")
}

/// One shard's pairs of one channel, read in order.
struct Run {
    path: PathBuf,
    r: BufReader<std::fs::File>,
    left: u64,
}

impl Run {
    fn open(path: &Path, channel: usize) -> Result<Run> {
        let mut file = std::fs::File::open(path).at(path)?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head).map_err(|_| truncated(path))?;
        if &head[..8] != MAGIC {
            return Err(truncated(path));
        }
        let n = u64::from_le_bytes(head[8..].try_into().expect("8 bytes")) as usize;
        if channel >= n {
            return Err(Error::format(path, format!("holds {n} channels, not {}: delete the run's work/ folder and run again", channel + 1)));
        }
        let mut counts = vec![0u8; 8 * n];
        file.read_exact(&mut counts).map_err(|_| truncated(path))?;
        let count = |i: usize| u64::from_le_bytes(counts[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        let before: u64 = (0..channel).map(count).sum();
        let start = 16 + 8 * n as u64 + 16 * before;
        file.seek(SeekFrom::Start(start)).at(path)?;
        Ok(Run { path: path.to_path_buf(), r: BufReader::with_capacity(1 << 16, file), left: count(channel) })
    }

    fn next(&mut self) -> Result<Option<(u64, u64)>> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut b = [0u8; 16];
        self.r.read_exact(&mut b).map_err(|_| truncated(&self.path))?;
        self.left -= 1;
        Ok(Some((u64::from_le_bytes(b[..8].try_into().expect("8 bytes")), u64::from_le_bytes(b[8..].try_into().expect("8 bytes")))))
    }
}

/// Call `f(key, id)` for every pair of `channel` across all `files`, in (key, id) order.
pub fn for_each_sorted(files: &[PathBuf], channel: usize, mut f: impl FnMut(u64, u64)) -> Result<()> {
    let mut runs = files.iter().map(|p| Run::open(p, channel)).collect::<Result<Vec<_>>>()?;
    let mut heap = BinaryHeap::with_capacity(runs.len());
    for (i, run) in runs.iter_mut().enumerate() {
        if let Some((k, id)) = run.next()? {
            heap.push(Reverse((k, id, i)));
        }
    }
    while let Some(Reverse((k, id, i))) = heap.pop() {
        f(k, id);
        if let Some((k, id)) = runs[i].next()? {
            heap.push(Reverse((k, id, i)));
        }
    }
    Ok(())
}

/// Call `f(key, first_id, id)` for every pair whose key an earlier (lower) id already had:
/// the duplicates, each with the lowest id of its key.
pub fn for_each_duplicate(files: &[PathBuf], channel: usize, mut f: impl FnMut(u64, u64, u64)) -> Result<()> {
    let mut current: Option<(u64, u64)> = None;
    for_each_sorted(files, channel, |k, id| match current {
        Some((ck, first)) if ck == k => f(k, first, id),
        _ => current = Some((k, id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigfile_merges_shards_in_key_order_per_channel() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (s, pairs) in [vec![(0, 9, 1), (0, 3, 2), (1, 5, 2)], vec![(0, 3, 0), (0, 7, 4)], vec![]].into_iter().enumerate() {
            let mut sig = Signatures::default();
            for (c, k, id) in pairs {
                sig.push(c, k, id);
            }
            let p = dir.path().join(format!("s{s}.bin"));
            sig.write(&p, 2).unwrap();
            files.push(p);
        }
        let mut seen = Vec::new();
        for_each_sorted(&files, 0, |k, id| seen.push((k, id))).unwrap();
        assert_eq!(seen, [(3, 0), (3, 2), (7, 4), (9, 1)]);
        let mut dups = Vec::new();
        for_each_duplicate(&files, 0, |k, first, id| dups.push((k, first, id))).unwrap();
        assert_eq!(dups, [(3, 0, 2)]);
        seen.clear();
        for_each_sorted(&files, 1, |k, id| seen.push((k, id))).unwrap();
        assert_eq!(seen, [(5, 2)]);
        assert!(for_each_sorted(&files, 2, |_, _| {}).is_err());
    }

    #[test]
    fn sigfile_refuses_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.bin");
        let mut sig = Signatures::default();
        sig.push(0, 1, 1);
        sig.push(0, 2, 2);
        sig.write(&p, 1).unwrap();
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() - 4]).unwrap();
        let err = for_each_sorted(std::slice::from_ref(&p), 0, |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("work/"), "{err}");
    }
}
