//! Sentence-pair pretraining (`train.sentence_task`), the second objective beside masked LM:
//! BERT's next-sentence prediction (NSP) and ALBERT's sentence-order prediction (SOP).
//!
//! Each training window of `t` tokens (drawn at a random place in the shards, as for plain
//! MLM) becomes one pair `[CLS] A [SEP] B [SEP]`, segment ids 0 up to and including the first
//! `[SEP]` and 1 after it. A is the window's first `la` tokens and B the `t − 3 − la` that
//! follow (la uniform in the middle half, so neither segment is tiny). Then, with probability
//! one half each:
//!
//! - NSP: label 0, B is the true continuation; label 1, B is replaced by the same span of
//!   another window of the batch (another random place in the corpus, almost always another
//!   document).
//! - SOP: label 0, A then B; label 1, the same two consecutive segments swapped (B then A).
//!   Both halves come from one document, so topic gives nothing away: only order does, which
//!   is why ALBERT's authors preferred it to NSP.
//!
//! The segments are cut at token positions, not sentence ends: the shards keep no sentence
//! boundaries. Which pair a row becomes depends only on the seed and the row's index in the
//! batch, so data-parallel shards draw what the whole batch would.

use crate::mlm::MlmMasker;
use candle_core::{Device, Tensor};
use jielong_core::{Error, Result, Rng};
use jielong_data::Batch;
use jielong_models::{ForwardOpts, Model, SentenceTask};
use jielong_tokenizer::Tokenizer;
use std::ops::Range;

/// Builds `[CLS] A [SEP] B [SEP]` pairs for one sentence-pair task.
#[derive(Debug, Clone)]
pub struct PairMaker {
    pub task: SentenceTask,
    cls: u32,
    sep: u32,
}

/// A batch of pairs: `ids`, `token_types` row-major (rows, t); one `labels` entry per row
/// (0: continuation / in order, 1: random B / swapped).
#[derive(Debug, Clone, PartialEq)]
pub struct Pairs {
    pub rows: usize,
    pub t: usize,
    pub ids: Vec<u32>,
    pub token_types: Vec<u32>,
    pub labels: Vec<u32>,
}

impl PairMaker {
    /// The maker for `tk`, which must have `[CLS]` and `[SEP]` (WordPiece tokenizers do).
    pub fn new(tk: &Tokenizer, task: SentenceTask) -> Result<Self> {
        let inner = tk.inner();
        let id = |tok: &str| {
            inner.token_to_id(tok).ok_or_else(|| {
                Error::input(format!(
                    "train.sentence_task = \"{}\" builds [CLS] A [SEP] B [SEP] pairs, and the tokenizer has no {tok} token: train one with `jielong tokenizer train --kind wordpiece` and prepare the data with it",
                    task.name()
                ))
            })
        };
        Ok(Self { task, cls: id("[CLS]")?, sep: id("[SEP]")? })
    }

    /// A maker with explicit special ids, for tests.
    pub fn with_ids(task: SentenceTask, cls: u32, sep: u32) -> Self {
        Self { task, cls, sep }
    }

    /// Pairs for rows `rows` of a batch of `n_rows` windows of `t` tokens each (`windows`
    /// row-major, the whole batch: NSP draws its random segments from the other rows). The
    /// draws of row r come from `Rng::derive(seed, [r])`. With a single window in the batch
    /// NSP has nowhere else to draw from, and every pair is a true continuation.
    pub fn pairs(&self, windows: &[u32], n_rows: usize, t: usize, rows: Range<usize>, seed: u64) -> Pairs {
        assert!(t >= 5, "a pair needs at least 5 positions");
        assert_eq!(windows.len(), n_rows * t);
        let body = t - 3;
        let mut out = Pairs { rows: rows.len(), t, ids: Vec::with_capacity(rows.len() * t), token_types: Vec::with_capacity(rows.len() * t), labels: Vec::with_capacity(rows.len()) };
        for r in rows {
            let mut rng = Rng::derive(seed, &[r as u64]);
            let lo = (body / 4).max(1);
            let hi = (body - body / 4).min(body - 1).max(lo);
            let la = lo + rng.below((hi - lo + 1) as u64) as usize;
            let own = &windows[r * t..r * t + body];
            let negative = rng.next_f64() < 0.5;
            let (first, second, label): (&[u32], &[u32], u32) = match (self.task, negative) {
                (_, false) => (&own[..la], &own[la..], 0),
                (SentenceTask::Sop, true) => (&own[la..], &own[..la], 1),
                (SentenceTask::Nsp, true) if n_rows > 1 => {
                    let o = (r + 1 + rng.below(n_rows as u64 - 1) as usize) % n_rows;
                    (&own[..la], &windows[o * t + la..o * t + body], 1)
                }
                (SentenceTask::Nsp, true) => (&own[..la], &own[la..], 0),
            };
            out.ids.push(self.cls);
            out.ids.extend_from_slice(first);
            out.ids.push(self.sep);
            out.ids.extend_from_slice(second);
            out.ids.push(self.sep);
            out.token_types.extend(std::iter::repeat_n(0, first.len() + 2));
            out.token_types.extend(std::iter::repeat_n(1, second.len() + 1));
            out.labels.push(label);
        }
        out
    }
}

/// One batch's sentence-pair figures: the MLM loss and the pair classifier's loss (means over
/// the batch) and how many of its pairs it labelled right.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PairStats {
    pub mlm_loss: f64,
    pub pair_loss: f64,
    pub correct: usize,
    pub n: usize,
}

impl PairStats {
    pub fn accuracy(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.correct as f64 / self.n as f64
        }
    }
    /// Add `other`, whose losses count with weight `w` (its share of the batch).
    pub fn add_weighted(&mut self, other: &PairStats, w: f64) {
        self.mlm_loss += other.mlm_loss * w;
        self.pair_loss += other.pair_loss * w;
        self.correct += other.correct;
        self.n += other.n;
    }
}

/// Rows `rows` of `batch` as masked pairs: (ids, token types, MLM targets, pair labels).
/// `pair_seed` picks the pairs, `mask_rng` the masked tokens.
pub fn pair_tensors(pm: &PairMaker, masker: &MlmMasker, batch: &Batch, rows: Range<usize>, pair_seed: u64, mask_rng: &mut Rng, dev: &Device) -> candle_core::Result<[Tensor; 4]> {
    let p = pm.pairs(&batch.inputs, batch.batch_size, batch.seq_len, rows, pair_seed);
    let (inputs, targets) = masker.mask(&p.ids, p.rows, p.t, mask_rng);
    let shape = (p.rows, p.t);
    Ok([
        Tensor::from_vec(inputs, shape, dev)?,
        Tensor::from_vec(p.token_types, shape, dev)?,
        Tensor::from_vec(targets, shape, dev)?,
        Tensor::from_vec(p.labels, p.rows, dev)?,
    ])
}

/// The pretraining loss of masked pairs: MLM loss + the pair classifier's cross-entropy (as
/// BERT and ALBERT sum them), and the figures of each part.
pub fn pair_loss(model: &dyn Model, [ids, types, targets, labels]: &[Tensor; 4], opts: ForwardOpts) -> Result<(Tensor, PairStats)> {
    let mlm = model.as_encoder().and_then(|e| e.as_masked_lm()).ok_or_else(|| Error::Other("sentence-pair pretraining without a masked LM".into()))?;
    let mask = Tensor::ones(ids.dims2()?, candle_core::DType::U32, ids.device())?;
    let (mlm_loss, logits) = mlm.pretraining(ids, Some(types), &mask, targets, opts)?;
    let pair_loss = jielong_nn::cross_entropy(&logits, labels)?;
    let guess = logits.argmax(1)?.to_vec1::<u32>()?;
    let truth = labels.to_vec1::<u32>()?;
    let stats = PairStats {
        mlm_loss: mlm_loss.to_scalar::<f32>()? as f64,
        pair_loss: pair_loss.to_scalar::<f32>()? as f64,
        correct: guess.iter().zip(&truth).filter(|(g, t)| g == t).count(),
        n: truth.len(),
    };
    Ok(((mlm_loss + pair_loss)?, stats))
}

/// Check, before training, that `model` has the head `task` trains; the error says what to set.
pub fn check_model(task: SentenceTask, model: &dyn Model) -> Result<()> {
    let family = model.config().family();
    let has = model.as_encoder().and_then(|e| e.sentence_task());
    let msg = match (task, has) {
        (t, Some(h)) if t == h => return Ok(()),
        (SentenceTask::Nsp, None) if family == "bert" => "needs BERT's next-sentence head: set model.nsp_head = true".to_string(),
        (SentenceTask::Sop, None) if family == "albert" => "needs ALBERT's sentence-order head: set model.sop_head = true (with model.pooler and model.mlm_head)".to_string(),
        (SentenceTask::Nsp, Some(SentenceTask::Sop)) => "is BERT's task; family albert has a sentence-order head: use train.sentence_task = \"sop\" (ALBERT replaced NSP with SOP)".to_string(),
        (SentenceTask::Sop, Some(SentenceTask::Nsp)) => "is ALBERT's task; family bert has a next-sentence head: use train.sentence_task = \"nsp\", or model.family = \"albert\"".to_string(),
        _ => format!("needs an encoder with a sentence-pair head on its pooler (family bert with model.nsp_head = true, or albert); family {family} has none"),
    };
    Err(Error::input(format!("train.sentence_task = \"{}\" {msg}", task.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within `z` standard deviations of a binomial(n, p) mean.
    fn within(count: usize, n: usize, p: f64, z: f64) -> bool {
        let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
        (count as f64 - mean).abs() <= z * sd
    }

    /// Windows whose tokens say where they came from: row r, position j holds 1000·(r+1) + j,
    /// so every token of a pair can be traced back.
    fn windows(n_rows: usize, t: usize) -> Vec<u32> {
        (0..n_rows).flat_map(|r| (0..t).map(move |j| (1000 * (r + 1) + j) as u32)).collect()
    }

    /// Split a pair row into (A, B), checking the layout [CLS] A [SEP] B [SEP] and segment ids.
    fn split(p: &Pairs, r: usize, cls: u32, sep: u32) -> (Vec<u32>, Vec<u32>) {
        let ids = &p.ids[r * p.t..(r + 1) * p.t];
        let types = &p.token_types[r * p.t..(r + 1) * p.t];
        assert_eq!(ids[0], cls);
        assert_eq!(ids[p.t - 1], sep);
        let mid = ids.iter().position(|&x| x == sep).unwrap();
        assert!(mid > 1 && mid < p.t - 2, "a segment is empty");
        assert!(types[..=mid].iter().all(|&x| x == 0) && types[mid + 1..].iter().all(|&x| x == 1), "segment ids");
        (ids[1..mid].to_vec(), ids[mid + 1..p.t - 1].to_vec())
    }

    #[test]
    fn sentence_pairs_are_half_negative_and_built_as_the_task_says() {
        let (n_rows, t, cls, sep) = (4000, 32, 1, 2);
        let w = windows(n_rows, t);
        for task in [SentenceTask::Nsp, SentenceTask::Sop] {
            let m = PairMaker::with_ids(task, cls, sep);
            let p = m.pairs(&w, n_rows, t, 0..n_rows, 5);
            assert_eq!((p.ids.len(), p.token_types.len(), p.labels.len()), (n_rows * t, n_rows * t, n_rows));
            let negatives = p.labels.iter().filter(|&&l| l == 1).count();
            // z = 5: a correct maker fails about once in 3.5 million runs; 47% or 53% fails always.
            assert!(within(negatives, n_rows, 0.5, 5.0), "{task:?}: {negatives} of {n_rows} negative");
            for r in 0..n_rows {
                let (a, b) = split(&p, r, cls, sep);
                let own = |x: u32| x / 1000 == r as u32 + 1;
                let consecutive = |s: &[u32]| s.windows(2).all(|x| x[1] == x[0] + 1);
                assert!(consecutive(&a) && consecutive(&b), "segments are contiguous spans");
                match (task, p.labels[r]) {
                    (_, 0) => {
                        // A is the window's start and B its continuation.
                        assert!(a.iter().all(|&x| own(x)) && a[0] == 1000 * (r as u32 + 1) && b[0] == a[a.len() - 1] + 1, "row {r}: not a continuation");
                    }
                    (SentenceTask::Sop, _) => {
                        // The same two consecutive segments, swapped: B A of the window.
                        assert!(a.iter().chain(&b).all(|&x| own(x)), "SOP used another window");
                        assert_eq!(b[0], 1000 * (r as u32 + 1), "row {r}: the window's start is not second");
                        assert_eq!(a[0], b[b.len() - 1] + 1, "row {r}: the swapped halves are not consecutive");
                    }
                    (SentenceTask::Nsp, _) => {
                        assert!(a.iter().all(|&x| own(x)) && a[0] == 1000 * (r as u32 + 1));
                        assert!(b.iter().all(|&x| !own(x)), "row {r}: the random B came from its own window");
                        assert_eq!(b[0] % 1000, a.len() as u32, "B is the same span of another window");
                    }
                }
            }
        }
    }

    #[test]
    fn sentence_pairs_do_not_depend_on_the_shard_split() {
        let (n_rows, t) = (6, 12);
        let w = windows(n_rows, t);
        for task in [SentenceTask::Nsp, SentenceTask::Sop] {
            let m = PairMaker::with_ids(task, 1, 2);
            let whole = m.pairs(&w, n_rows, t, 0..n_rows, 9);
            let (x, y) = (m.pairs(&w, n_rows, t, 0..2, 9), m.pairs(&w, n_rows, t, 2..n_rows, 9));
            assert_eq!(whole.ids, [x.ids, y.ids].concat());
            assert_eq!(whole.labels, [x.labels, y.labels].concat());
        }
        // One window: NSP has no other window to draw from, every pair is a continuation.
        let one = PairMaker::with_ids(SentenceTask::Nsp, 1, 2).pairs(&windows(1, 12), 1, 12, 0..1, 3);
        assert_eq!(one.labels, vec![0]);
    }

    #[test]
    fn sentence_pairs_need_cls_and_sep() {
        let tk = Tokenizer::train(jielong_tokenizer::TokenizerKind::Char, 50, std::iter::once("abc")).unwrap();
        let e = PairMaker::new(&tk, SentenceTask::Sop).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("[CLS]"), "{e}");
    }
}
