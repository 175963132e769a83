//! Encoded examples and the batches of a run: every example once per epoch, in an order drawn
//! from (seed, epoch), so the batch of step s is a function of (seed, s) and a resumed run
//! sees the batches the uninterrupted one would.

use super::encode::{encode, Encoded, LossOn};
use super::read::ChatExample;
use super::IGNORE;
use crate::batcher::PAD_SEGMENT;
use crate::Batch;
use jielong_core::{Error, Result, Rng};
use jielong_tokenizer::{ChatTemplate, Tokenizer};

/// The encoded examples of a data file, with what was dropped and why.
pub struct SftData {
    pub examples: Vec<Encoded>,
    /// (line, why) for examples that could not be used: the template failed on them, or no
    /// assistant token fits in the context.
    pub bad: Vec<(usize, String)>,
    /// Examples cut to the context length (their loss tokens past it are lost).
    pub truncated: usize,
}

impl SftData {
    /// Encode `examples`, cut to `max_len` tokens. With `strict`, the first example that cannot
    /// be used is an error naming its line; an error too when none can be used.
    pub fn encode(examples: &[ChatExample], template: &ChatTemplate, tk: &Tokenizer, loss_on: LossOn, max_len: usize, strict: bool, file: &str) -> Result<Self> {
        let mut out = SftData { examples: Vec::with_capacity(examples.len()), bad: Vec::new(), truncated: 0 };
        for ex in examples {
            let result = encode(template, tk, &ex.messages, loss_on).map(|mut e| {
                if e.ids.len() > max_len {
                    e.ids.truncate(max_len);
                    e.loss.truncate(max_len);
                    out.truncated += 1;
                }
                e
            });
            let why = match result {
                Ok(e) if e.n_loss() > 0 => {
                    out.examples.push(e);
                    continue;
                }
                Ok(_) => format!("no assistant token fits in the context of {max_len} tokens"),
                Err(why) => why,
            };
            if strict {
                return Err(Error::input(format!("{file}:{}: {why}", ex.line)));
            }
            out.bad.push((ex.line, why));
        }
        if out.examples.is_empty() {
            let (l, why) = out.bad.first().cloned().unwrap_or((0, "no examples".into()));
            return Err(Error::input(format!("{file}:{l}: {why} (no example of {} can be used)", examples.len())));
        }
        Ok(out)
    }

    /// Tokens carrying loss, over all examples.
    pub fn loss_tokens(&self) -> usize {
        self.examples.iter().map(Encoded::n_loss).sum()
    }
}

/// Which examples make the batch of (step, micro-step).
pub struct SftSampler {
    n: usize,
    batch_size: usize,
    seed: u64,
}

impl SftSampler {
    pub fn new(n_examples: usize, batch_size: usize, seed: u64) -> Result<Self> {
        if n_examples == 0 || batch_size == 0 {
            return Err(Error::input("supervised fine-tuning needs at least one example and a batch size of at least 1"));
        }
        Ok(Self { n: n_examples, batch_size, seed })
    }

    /// The epoch's order of the examples: a permutation drawn from (seed, epoch).
    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut rng = Rng::derive(self.seed, &[epoch, 0x5F7]);
        let mut v: Vec<usize> = (0..self.n).collect();
        for i in (1..v.len()).rev() {
            v.swap(i, rng.below(i as u64 + 1) as usize);
        }
        v
    }

    /// Indices of the examples of the k-th batch of the run (k = step · grad_accum + micro).
    pub fn indices(&self, k: u64) -> Vec<usize> {
        let start = k * self.batch_size as u64;
        let mut out = Vec::with_capacity(self.batch_size);
        let mut cached: Option<(u64, Vec<usize>)> = None;
        for j in 0..self.batch_size as u64 {
            let pos = start + j;
            let (epoch, at) = (pos / self.n as u64, (pos % self.n as u64) as usize);
            if cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
                cached = Some((epoch, self.order(epoch)));
            }
            out.push(cached.as_ref().expect("set above").1[at]);
        }
        out
    }

    /// The k-th batch, each row one example padded to the longest (pads: `pad` in, IGNORE out).
    pub fn batch(&self, data: &SftData, k: u64, pad: u32) -> Batch {
        let rows: Vec<&Encoded> = self.indices(k).into_iter().map(|i| &data.examples[i]).collect();
        padded(&rows, pad)
    }

    /// The k-th batch packed (`sft --packing`): the examples `batch` would pad, packed into
    /// rows of at most `window` positions (`packed`).
    pub fn packed_batch(&self, data: &SftData, k: u64, window: usize, pad: u32) -> Batch {
        let rows: Vec<&Encoded> = self.indices(k).into_iter().map(|i| &data.examples[i]).collect();
        packed(&rows, window, pad)
    }
}

/// Rows padded to the longest of them.
pub fn padded(rows: &[&Encoded], pad: u32) -> Batch {
    let len = rows.iter().map(|e| e.ids.len().saturating_sub(1)).max().unwrap_or(0).max(1);
    let mut inputs = Vec::with_capacity(rows.len() * len);
    let mut targets = Vec::with_capacity(rows.len() * len);
    for e in rows {
        let (i, t) = e.row(len, pad);
        inputs.extend(i);
        targets.extend(t);
    }
    Batch { batch_size: rows.len(), seq_len: len, inputs, targets, segments: None }
}

/// Examples packed into rows of at most `window` positions, as TRL's padding-free collator
/// lays them out: each example's ids in full (cut to `window`), its targets the next ids where
/// they carry loss and [`IGNORE`] at its last token, so no position predicts another example's
/// token (an example cut to the window keeps the target of its last kept token). Rows are filled first-fit in the order given; the batch is as long as its longest
/// row, the rest padded (`pad` in, IGNORE out, segment [`PAD_SEGMENT`]). Segments number the
/// examples of a row from 0: the model attends within a segment only, positions restarting at
/// 0 in each (`Batch::segments`).
pub fn packed(rows: &[&Encoded], window: usize, pad: u32) -> Batch {
    let window = window.max(1);
    // Row fills: (ids, targets, segments).
    let mut out: Vec<(Vec<u32>, Vec<u32>, Vec<u32>)> = Vec::new();
    for e in rows {
        let n = e.ids.len().min(window);
        let at = match out.iter().position(|(ids, _, _)| ids.len() + n <= window) {
            Some(r) => r,
            None => {
                out.push(Default::default());
                out.len() - 1
            }
        };
        let (ids, targets, segs) = &mut out[at];
        let seg = segs.last().map_or(0, |s| s + 1);
        ids.extend_from_slice(&e.ids[..n]);
        targets.extend((1..=n).map(|k| if k < e.ids.len() && e.loss[k] { e.ids[k] } else { IGNORE }));
        segs.extend(std::iter::repeat_n(seg, n));
    }
    let len = out.iter().map(|r| r.0.len()).max().unwrap_or(0).max(1);
    let (mut inputs, mut targets, mut segments) = (Vec::new(), Vec::new(), Vec::new());
    for (mut i, mut t, mut s) in out.iter().cloned() {
        i.resize(len, pad);
        t.resize(len, IGNORE);
        s.resize(len, PAD_SEGMENT);
        inputs.extend(i);
        targets.extend(t);
        segments.extend(s);
    }
    Batch { batch_size: out.len().max(1), seq_len: len, inputs, targets, segments: Some(segments) }
}

/// Position ids of packed segments: 0, 1, … within each example (and within each run of
/// padding).
pub fn segment_positions(segments: &[u32], seq_len: usize) -> Vec<u32> {
    let mut pos = Vec::with_capacity(segments.len());
    for (i, &s) in segments.iter().enumerate() {
        let restart = i % seq_len == 0 || segments[i - 1] != s;
        pos.push(if restart { 0 } else { pos[i - 1] + 1 });
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sft::IGNORE;

    #[test]
    fn sft_sampler_visits_every_example_once_per_epoch_and_is_seeded() {
        let s = SftSampler::new(10, 3, 7).unwrap();
        let mut seen: Vec<usize> = (0..3).flat_map(|k| s.indices(k)).collect();
        seen.extend(&s.indices(3)[..1]);
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(s.indices(5), SftSampler::new(10, 3, 7).unwrap().indices(5));
        assert_ne!((0..4).map(|k| s.indices(k)).collect::<Vec<_>>(), (0..4).map(|k| SftSampler::new(10, 3, 8).unwrap().indices(k)).collect::<Vec<_>>());
    }

    #[test]
    fn sft_padded_batch_pads_after_each_example() {
        let a = Encoded { ids: vec![1, 2, 3], loss: vec![false, true, true] };
        let b = Encoded { ids: vec![4, 5, 6, 7, 8], loss: vec![false, false, false, true, true] };
        let batch = padded(&[&a, &b], 0);
        assert_eq!((batch.batch_size, batch.seq_len), (2, 4));
        assert_eq!(batch.inputs, [1, 2, 0, 0, 4, 5, 6, 7]);
        assert_eq!(batch.targets, [2, 3, IGNORE, IGNORE, IGNORE, IGNORE, 7, 8]);
    }

    #[test]
    fn sft_packed_batch_fills_rows_first_fit_and_never_predicts_across_examples() {
        let a = Encoded { ids: vec![1, 2, 3], loss: vec![false, true, true] };
        let b = Encoded { ids: vec![4, 5, 6, 7, 8], loss: vec![false, false, false, true, true] };
        let c = Encoded { ids: vec![9, 10], loss: vec![false, true] };
        let batch = packed(&[&a, &b, &c], 6, 0);
        // a (3) + c (2) share row 0; b (5) does not fit beside a and takes row 1.
        assert_eq!((batch.batch_size, batch.seq_len), (2, 5));
        assert_eq!(batch.inputs, [1, 2, 3, 9, 10, 4, 5, 6, 7, 8]);
        assert_eq!(batch.targets, [2, 3, IGNORE, 10, IGNORE, IGNORE, IGNORE, 7, 8, IGNORE]);
        let segs = batch.segments.clone().unwrap();
        assert_eq!(segs, [0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        assert_eq!(segment_positions(&segs, 5), [0, 1, 2, 0, 1, 0, 1, 2, 3, 4]);
        // The same loss tokens as padding the examples.
        let n = |t: &[u32]| t.iter().filter(|&&x| x != IGNORE).count();
        assert_eq!(n(&batch.targets), n(&padded(&[&a, &b, &c], 0).targets));
        // An example longer than the window is cut to it (its last position still predicts its own
        // next token).
        let cut = packed(&[&b], 3, 0);
        assert_eq!((cut.inputs.as_slice(), cut.targets.as_slice()), ([4, 5, 6].as_slice(), [IGNORE, IGNORE, 7].as_slice()));
    }
}
