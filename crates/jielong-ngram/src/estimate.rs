//! From counts to a model in backoff form. Probabilities are computed in f64, order by order
//! from the unigrams up, in the one recursive form of `smoothing.rs`:
//! p(h w) = α(h w) + γ(h) · p(w | h'), and γ(h) becomes the backoff weight stored on the
//! context h. Because every suffix h' w of a seen n-gram h w is itself seen, p(w | h') is the
//! stored probability of that suffix; for a w never seen after h, the backoff form gives
//! γ(h) · p(w | h'), which is exactly the interpolated value. So the backoff form is the model,
//! not an approximation of it.

use crate::counts::{Counts, Gram};
use crate::key::{self, MAX_ORDER, MAX_VOCAB};
use crate::model::{ModelMeta, NgramModel};
use crate::smoothing::{counts_of_counts, discounts, Smoothing};
use crate::table::Entry;
use crate::vocab::{Vocab, BOS};
use jielong_core::{Error, Result};

/// What to build.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub order: usize,
    pub smoothing: Smoothing,
    /// lmplz's `--prune`: per order, n-grams seen at most this many times (raw count) are
    /// dropped (the last value applies to the remaining orders; non-decreasing). As in lmplz,
    /// the discounts are estimated from every n-gram, a pruned n-gram still counts in its
    /// context's denominator, and its own mass moves to the context's backoff weight, so the
    /// n-grams kept get lmplz's probabilities (`tests/kenlm.rs`). The unigram value (which
    /// lmplz documents as 0 only) is applied when the vocabulary is built: rarer units become
    /// `<unk>` (see `index_sentences`).
    pub prune: Vec<u64>,
    /// Kneser-Ney discounts to use when they cannot be estimated (KenLM's
    /// `--discount_fallback`).
    pub discount_fallback: Option<[f64; 3]>,
}

impl TrainConfig {
    pub fn new(order: usize, smoothing: Smoothing) -> Self {
        Self { order, smoothing, prune: Vec::new(), discount_fallback: None }
    }

    /// Check the order and the prune thresholds.
    pub fn validate(&self) -> Result<()> {
        if self.order == 0 || self.order > MAX_ORDER {
            return Err(Error::input(format!("--order {} is out of range: use 1 to {MAX_ORDER}", self.order)));
        }
        if self.prune.windows(2).any(|w| w[1] < w[0]) {
            return Err(Error::input("--prune thresholds must be non-decreasing by order, e.g. --prune 0,0,1"));
        }
        if self.prune.len() > self.order {
            return Err(Error::input(format!("--prune gives {} thresholds for an order-{} model", self.prune.len(), self.order)));
        }
        if self.prune.iter().skip(1).any(|&t| t > 0) && matches!(self.smoothing, Smoothing::Mle | Smoothing::AddK { .. }) {
            return Err(Error::input("--prune above unigrams needs a smoothed backoff model: use interpolated-add-k, kneser-ney or modified-kneser-ney"));
        }
        Ok(())
    }

    /// The threshold of order m (lmplz: the last value given applies to the rest).
    pub fn prune_threshold(&self, m: usize) -> u64 {
        self.prune.get(m - 1).or(self.prune.last()).copied().unwrap_or(0)
    }
}

/// One n-gram being estimated: its key, raw count, probability and backoff (linear).
#[derive(Debug, Clone, Copy)]
struct Est {
    key: u128,
    raw: u64,
    p: f64,
    b: f64,
}

/// Count `sentences` (ids from `vocab`) and estimate a model.
pub fn train(sentences: &[Vec<u32>], vocab: Vocab, cfg: &TrainConfig) -> Result<NgramModel> {
    cfg.validate()?;
    if vocab.len() > MAX_VOCAB {
        return Err(Error::input(format!("the vocabulary has {} units; jielong's n-gram keys hold at most {MAX_VOCAB}", vocab.len())));
    }
    if sentences.iter().all(|s| s.is_empty()) {
        return Err(Error::input("the corpus is empty: it has no units to count (check the input files and --units)"));
    }
    let counts = Counts::new(sentences, cfg.order);
    estimate(&counts, vocab, cfg)
}

/// Estimate a model from counts.
pub fn estimate(counts: &Counts, vocab: Vocab, cfg: &TrainConfig) -> Result<NgramModel> {
    cfg.validate()?;
    let n = cfg.order;
    let v = vocab.predicted_len() as f64;
    let adjusted = cfg.smoothing.uses_adjusted_counts();
    let count_of = |g: &Gram| if adjusted { g.adjusted } else { g.raw };

    let mut meta = ModelMeta {
        order: n,
        smoothing: cfg.smoothing.name().to_string(),
        k: match &cfg.smoothing {
            Smoothing::AddK { k } => vec![*k],
            Smoothing::InterpolatedAddK { ks } => ks.clone(),
            _ => Vec::new(),
        },
        discounts: Vec::new(),
        units: "space".into(),
        tokenizer: None,
        tokenizer_sha256: None,
        sentences: "lines".into(),
        prune: cfg.prune.clone(),
        training_sentences: counts.sentences,
        training_tokens: counts.tokens,
        suffix_closed: true,
    };
    let mut order_discounts = vec![[0.0; 3]; n];
    if adjusted {
        let modified = cfg.smoothing == Smoothing::ModifiedKneserNey;
        for m in 1..=n {
            let coc = counts_of_counts(counts.order_grams(m).iter().map(|g| g.adjusted));
            order_discounts[m - 1] = discounts(coc, modified, m, cfg.discount_fallback)?;
        }
        meta.discounts = order_discounts.clone();
    }

    // Unigrams: dense over the vocabulary (units never seen have count 0).
    let mut uni_counts = vec![0u64; vocab.len()];
    for g in counts.order_grams(1) {
        uni_counts[key::last(g.key) as usize] = count_of(g);
    }
    let mut unigrams: Vec<[f64; 2]> = vec![[0.0, 1.0]; vocab.len()];
    {
        let total: u64 = uni_counts.iter().sum();
        let t = total as f64;
        let seen = || uni_counts.iter().copied().filter(|&c| c > 0);
        // (α numerator as a function of the count, γ)
        let (alpha, gamma): (Box<dyn Fn(u64) -> f64>, f64) = match &cfg.smoothing {
            Smoothing::Mle => (Box::new(move |c| c as f64 / t), 0.0),
            Smoothing::AddK { k } if n == 1 => (Box::new(move |c| c as f64 / (t + k * v)), k * v / (t + k * v)),
            Smoothing::AddK { .. } => (Box::new(|_| 0.0), 1.0),
            Smoothing::InterpolatedAddK { ks } => {
                let k = ks[0];
                (Box::new(move |c| c as f64 / (t + k * v)), k * v / (t + k * v))
            }
            Smoothing::KneserNey | Smoothing::ModifiedKneserNey => {
                let d = order_discounts[0];
                let gamma = seen().map(|c| disc(&d, c)).sum::<f64>() / t;
                (Box::new(move |c| (c as f64 - disc(&d, c)).max(0.0) / t), gamma)
            }
        };
        for (id, u) in unigrams.iter_mut().enumerate() {
            u[0] = if id as u32 == BOS { 0.0 } else { alpha(uni_counts[id]) + gamma / v };
        }
    }

    let mut orders: Vec<Vec<Est>> = Vec::with_capacity(n.saturating_sub(1));
    for m in 2..=n {
        let grams = counts.order_grams(m);
        let t = cfg.prune_threshold(m);
        let mut ests: Vec<Est> = grams.iter().map(|g| Est { key: g.key, raw: g.raw, p: 0.0, b: 1.0 }).collect();
        let mut contexts: Vec<(u128, f64)> = Vec::new();
        let mut i = 0;
        while i < grams.len() {
            let ctx = key::context(grams[i].key);
            let mut j = i;
            while j < grams.len() && key::context(grams[j].key) == ctx {
                j += 1;
            }
            let group = &grams[i..j];
            let total = group.iter().map(count_of).sum::<u64>() as f64;
            // A full context for add-k: the highest order, or a sentence start.
            let full_context = m == n || key::first(grams[i].key, m) == BOS;
            let lower = |g: &Gram| -> f64 {
                let s = key::suffix(g.key, m);
                if m == 2 {
                    unigrams[s as usize][0]
                } else {
                    let lo = &orders[m - 3];
                    lo[lo.binary_search_by_key(&s, |e| e.key).expect("the suffix of a seen n-gram is seen")].p
                }
            };
            let gamma = match &cfg.smoothing {
                Smoothing::Mle => {
                    for (e, g) in ests[i..j].iter_mut().zip(group) {
                        e.p = g.raw as f64 / total;
                    }
                    Some(0.0)
                }
                Smoothing::AddK { k } => {
                    if full_context {
                        let den = total + k * v;
                        for (e, g) in ests[i..j].iter_mut().zip(group) {
                            e.p = (g.raw as f64 + k) / den;
                        }
                        Some(k * v / den)
                    } else {
                        for e in &mut ests[i..j] {
                            e.p = 1.0 / v;
                        }
                        None
                    }
                }
                // Pruned n-grams (raw count ≤ t) give their whole mass to γ, as lmplz does.
                Smoothing::InterpolatedAddK { ks } => {
                    let kv = ks[m - 1] * v;
                    let pruned: u64 = group.iter().filter(|g| g.raw <= t).map(|g| g.raw).sum();
                    let gamma = (kv + pruned as f64) / (total + kv);
                    for (e, g) in ests[i..j].iter_mut().zip(group).filter(|(_, g)| g.raw > t) {
                        e.p = g.raw as f64 / (total + kv) + gamma * lower(g);
                    }
                    Some(gamma)
                }
                Smoothing::KneserNey | Smoothing::ModifiedKneserNey => {
                    let d = order_discounts[m - 1];
                    let mass: f64 = group.iter().map(|g| if g.raw > t { disc(&d, g.adjusted) } else { g.adjusted as f64 }).sum();
                    let gamma = mass / total;
                    for (e, g) in ests[i..j].iter_mut().zip(group).filter(|(_, g)| g.raw > t) {
                        e.p = (g.adjusted as f64 - disc(&d, g.adjusted)).max(0.0) / total + gamma * lower(g);
                    }
                    Some(gamma)
                }
            };
            if let Some(gamma) = gamma {
                contexts.push((ctx, gamma));
            }
            i = j;
        }
        set_backoffs(&mut unigrams, &mut orders, m - 1, &contexts);
        if t > 0 {
            ests.retain(|e| e.raw > t);
        }
        orders.push(ests);
    }

    let to_log = |x: f64| if x > 0.0 { x.log10() } else { f64::NEG_INFINITY };
    let uni_log: Vec<[f64; 2]> = unigrams.iter().enumerate().map(|(id, u)| [if id as u32 == BOS { f64::NEG_INFINITY } else { to_log(u[0]) }, to_log(u[1])]).collect();
    let tables: Vec<Vec<Entry>> = orders.iter().map(|o| o.iter().map(|e| Entry::new(e.key, to_log(e.p), to_log(e.b))).collect()).collect();
    Ok(NgramModel::from_parts(meta, vocab, uni_log, tables))
}

/// The discount of an n-gram with adjusted count `c` (D1, D2 or D3+).
fn disc(d: &[f64; 3], c: u64) -> f64 {
    match c {
        0 => 0.0,
        1 => d[0],
        2 => d[1],
        _ => d[2],
    }
}

/// Store γ(h) on the contexts h (n-grams of order `ctx_order`).
fn set_backoffs(unigrams: &mut [[f64; 2]], orders: &mut [Vec<Est>], ctx_order: usize, contexts: &[(u128, f64)]) {
    for &(h, gamma) in contexts {
        if ctx_order == 1 {
            unigrams[h as usize][1] = gamma;
        } else {
            let o = &mut orders[ctx_order - 2];
            if let Ok(at) = o.binary_search_by_key(&h, |e| e.key) {
                o[at].b = gamma;
            }
        }
    }
}
