//! Batches for causal language modelling: each row is a window of `seq_len + 1` consecutive
//! tokens; inputs are its first `seq_len`, targets its last `seq_len`.
//!
//! `RandomWindows` draws window starts from a generator derived from (seed, step, micro-step),
//! so the batch for a step never depends on what was drawn before: a resumed run sees exactly
//! the batches an uninterrupted run would have seen.

use crate::dataset::TokenDataset;
use jielong_core::{Error, Result, Rng};

#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub batch_size: usize,
    pub seq_len: usize,
    /// Row-major (batch_size, seq_len).
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    /// Packed rows (`sft --packing`): row-major (batch_size, seq_len), the index of the example
    /// each position belongs to within its row ([`PAD_SEGMENT`] for padding). A position attends
    /// only to the earlier positions of its own example, and positions restart at 0 for each
    /// example. None: each row is one sequence.
    pub segments: Option<Vec<u32>>,
}

/// The segment of padding positions in a packed row.
pub const PAD_SEGMENT: u32 = u32::MAX;

pub(crate) fn window_batch(data: &TokenDataset, starts: &[usize], seq_len: usize) -> Batch {
    let mut inputs = Vec::with_capacity(starts.len() * seq_len);
    let mut targets = Vec::with_capacity(starts.len() * seq_len);
    let mut row = Vec::with_capacity(seq_len + 1);
    for &s in starts {
        row.clear();
        data.read_into(s, seq_len + 1, &mut row);
        inputs.extend_from_slice(&row[..seq_len]);
        targets.extend_from_slice(&row[1..]);
    }
    Batch { batch_size: starts.len(), seq_len, inputs, targets, segments: None }
}

pub struct RandomWindows {
    pub seed: u64,
    pub batch_size: usize,
    pub seq_len: usize,
}

impl RandomWindows {
    pub fn new(data: &TokenDataset, seed: u64, batch_size: usize, seq_len: usize) -> Result<Self> {
        if data.len() < seq_len + 1 {
            return Err(Error::input(format!(
                "the training split has {} tokens, fewer than one window of max_seq_len + 1 = {}: add text or lower model.max_seq_len",
                data.len(),
                seq_len + 1
            )));
        }
        Ok(Self { seed, batch_size, seq_len })
    }

    /// The batch for optimizer step `step`, micro-step `micro` (gradient accumulation).
    pub fn batch(&self, data: &TokenDataset, step: u64, micro: u64) -> Batch {
        let mut rng = Rng::derive(self.seed, &[step, micro]);
        let n_starts = (data.len() - self.seq_len) as u64;
        let starts: Vec<usize> = (0..self.batch_size).map(|_| rng.below(n_starts) as usize).collect();
        window_batch(data, &starts, self.seq_len)
    }
}

/// Non-overlapping windows over the whole split, in order, for evaluation: every token after
/// the first of each window is predicted exactly once. At most `max_windows` windows.
pub fn eval_batches(data: &TokenDataset, batch_size: usize, seq_len: usize, max_windows: usize) -> Vec<Batch> {
    if data.len() < 2 {
        return Vec::new();
    }
    let step = seq_len.min(data.len() - 1);
    let mut starts = Vec::new();
    let mut s = 0;
    while s + step < data.len() && starts.len() < max_windows {
        starts.push(s);
        s += step;
    }
    starts.chunks(batch_size).map(|c| window_batch(data, c, step)).collect()
}
