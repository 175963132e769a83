//! Sequential batching for recurrent models (truncated backpropagation through time): the
//! split is cut into `batch_size` contiguous streams of equal length, and batch k holds, for
//! every stream, its k-th window of `seq_len` tokens (with the token after it as the last
//! target). Row j of batch k + 1 continues exactly where row j of batch k ended, so the hidden
//! state at the end of one batch is the right state to start the next from. After the last
//! whole window of a stream the streams start over (a new epoch, from a fresh state).
//!
//! Like `RandomWindows`, a batch depends only on its index, so a resumed run reads the same
//! batches; the carried state itself is saved in the checkpoint.

use crate::batcher::{window_batch, Batch};
use crate::dataset::TokenDataset;
use jielong_core::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequentialStreams {
    pub batch_size: usize,
    pub seq_len: usize,
    /// Tokens in each stream (the split's tail past batch_size · stream_len is not read).
    pub stream_len: usize,
    /// Windows per stream: batches in one pass over the split.
    pub batches_per_epoch: u64,
}

impl SequentialStreams {
    /// Streams over a split of `n_tokens` tokens.
    pub fn new(n_tokens: usize, batch_size: usize, seq_len: usize) -> Result<Self> {
        let stream_len = n_tokens / batch_size.max(1);
        if batch_size == 0 || seq_len == 0 || stream_len < seq_len + 1 {
            return Err(Error::input(format!(
                "train.batching = \"sequential\" cuts the training split ({n_tokens} tokens) into train.batch_size = {batch_size} streams of \
                 {stream_len} tokens, shorter than one window of max_seq_len + 1 = {}: lower train.batch_size or model.max_seq_len, or add text",
                seq_len + 1
            )));
        }
        Ok(Self { batch_size, seq_len, stream_len, batches_per_epoch: ((stream_len - 1) / seq_len) as u64 })
    }

    /// The first token of each row of batch `k` (counted over the whole run).
    pub fn starts(&self, k: u64) -> Vec<usize> {
        let pos = (k % self.batches_per_epoch) as usize * self.seq_len;
        (0..self.batch_size).map(|j| j * self.stream_len + pos).collect()
    }

    /// True when batch `k` begins a pass over the streams: its state starts at zero.
    pub fn starts_epoch(&self, k: u64) -> bool {
        k.is_multiple_of(self.batches_per_epoch)
    }

    /// Batch `k`: rows are the streams, in order.
    pub fn batch(&self, data: &TokenDataset, k: u64) -> Batch {
        window_batch(data, &self.starts(k), self.seq_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_contiguous_slices_read_in_order() {
        let s = SequentialStreams::new(103, 4, 5).unwrap();
        assert_eq!((s.stream_len, s.batches_per_epoch), (25, 4));
        assert_eq!(s.starts(0), vec![0, 25, 50, 75]);
        // Each row continues where the same row of the previous batch ended.
        for k in 0..3 {
            let (a, b) = (s.starts(k), s.starts(k + 1));
            assert!(a.iter().zip(&b).all(|(x, y)| y - x == 5), "batch {k}");
        }
        // The last window of stream j ends inside stream j (its last target included).
        let last = s.starts(3);
        assert!(last.iter().enumerate().all(|(j, &st)| st + 5 < (j + 1) * 25 + 1));
        assert!(s.starts_epoch(0) && s.starts_epoch(4) && !s.starts_epoch(5));
        assert_eq!(s.starts(4), s.starts(0));
        let e = SequentialStreams::new(20, 4, 5).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("lower train.batch_size"), "{e}");
    }
}
