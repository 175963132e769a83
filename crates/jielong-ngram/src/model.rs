//! A trained n-gram model in backoff form, the form ARPA files and KenLM use: for every stored
//! n-gram, its log10 probability and (if it is a context) its log10 backoff weight, so that
//!
//! ```text
//! log10 p(w | h) = log10 p(h w)                       if h w is stored
//!                = log10 b(h) + log10 p(w | h')       otherwise (b = 1 when h is not stored)
//! ```
//!
//! Every smoothing method jielong trains is written into this form exactly (see
//! `estimate.rs`), so scoring, sampling, ARPA and the binary file share one code path.

use crate::key::{extend, pack, ID_BITS, MAX_ORDER};
use crate::table::{hash_extend, hash_start, stored, Buf, Entry, Table};
use crate::vocab::{Vocab, BOS, UNK};

/// What a model file records besides its tables.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelMeta {
    pub order: usize,
    /// The smoothing it was trained with ("arpa" when imported from an ARPA file).
    pub smoothing: String,
    /// add-k's k, or interpolated add-k's k per order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub k: Vec<f64>,
    /// Kneser-Ney discounts D1, D2, D3+ per order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<[f64; 3]>,
    /// How text is cut into units: words, chars, space or tokens.
    pub units: String,
    /// For units = tokens: the tokenizer file it was trained with and its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer_sha256: Option<String>,
    /// How text is cut into sentences: lines or unicode.
    pub sentences: String,
    /// `--prune` thresholds per order (empty: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune: Vec<u64>,
    /// Sentences and units (</s> included) counted in training.
    #[serde(default)]
    pub training_sentences: u64,
    #[serde(default)]
    pub training_tokens: u64,
    /// Every stored n-gram's suffix (its last m − 1 units) is stored too. True for every model
    /// jielong trains and every lmplz ARPA file; checked when an ARPA file is read. Scoring
    /// stops looking for longer matches at the first miss only when this holds.
    #[serde(default)]
    pub suffix_closed: bool,
}

/// What scoring carries from one word to the next: the last N − 1 units (most recent first) and
/// the log10 backoffs of the context's suffixes (index j: the last j + 1 units; 0 when not
/// stored), as in KenLM's `State`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct State {
    pub ctx: [u32; MAX_ORDER - 1],
    pub backoff: [f64; MAX_ORDER - 1],
    pub len: usize,
}

pub struct NgramModel {
    pub(crate) meta: ModelMeta,
    pub(crate) vocab: Vocab,
    /// Per id: [log10 p, log10 b] of the unigram.
    pub(crate) unigrams: Buf<[f64; 2]>,
    /// Orders 2..=N.
    pub(crate) tables: Vec<Table>,
    /// Every table is hash-unique, so [`score`](NgramModel::score) may use hash-only lookups.
    pub(crate) hash_unique: bool,
}

impl std::fmt::Debug for NgramModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NgramModel({}-gram {}, {} units)", self.meta.order, self.meta.smoothing, self.vocab.len())
    }
}

impl NgramModel {
    /// From tables: `unigrams[id]` = [log10 p, log10 b]; `orders[m − 2]` the entries of order m.
    pub fn from_parts(meta: ModelMeta, vocab: Vocab, unigrams: Vec<[f64; 2]>, orders: Vec<Vec<Entry>>) -> Self {
        debug_assert_eq!(unigrams.len(), vocab.len());
        let tables = orders.iter().enumerate().map(|(i, e)| Table::build(i + 2, e)).collect();
        Self::from_tables(meta, vocab, Buf::owned(unigrams), tables)
    }

    pub(crate) fn from_tables(meta: ModelMeta, vocab: Vocab, unigrams: Buf<[f64; 2]>, tables: Vec<Table>) -> Self {
        let hash_unique = tables.iter().all(Table::is_hash_unique);
        Self { meta, vocab, unigrams, tables, hash_unique }
    }

    pub fn order(&self) -> usize {
        self.meta.order
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    pub fn meta_mut(&mut self) -> &mut ModelMeta {
        &mut self.meta
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Number of stored n-grams of order `m` (unigrams: the vocabulary, `<s>` included).
    pub fn count(&self, m: usize) -> usize {
        if m == 1 {
            self.unigrams.len()
        } else {
            self.tables[m - 2].len()
        }
    }

    /// log10 p(w | context): `context` oldest first (only its last N − 1 units matter; a
    /// sentence's context starts with `<s>`).
    #[inline]
    pub fn log10_prob(&self, context: &[u32], w: u32) -> f64 {
        let n = self.meta.order;
        let ctx = &context[context.len().saturating_sub(n - 1)..];
        let mut backoff = 0.0;
        for m in (2..=ctx.len() + 1).rev() {
            let h = pack(&ctx[ctx.len() - (m - 1)..]);
            if let Some(e) = self.tables[m - 2].get(extend(h, w)) {
                return e.logp + backoff;
            }
            backoff += self.log10_backoff_key(h, m - 1);
        }
        self.unigrams[w as usize][0] + backoff
    }

    /// The state at the start of a sentence: the context `<s>`.
    pub fn begin_sentence(&self) -> State {
        let mut s = State::default();
        if self.meta.order > 1 {
            s.ctx[0] = BOS;
            s.backoff[0] = self.unigrams[BOS as usize][1];
            s.len = 1;
        }
        s
    }

    /// log10 p(w | state), and the state after w in `out`: the value of
    /// [`log10_prob`](Self::log10_prob) with the state's context, found as KenLM's `query` does
    /// it, from the 16-byte probing slots (f32 values, hash-only lookups: see `table.rs`), so
    /// it agrees with `log10_prob` to f32 rounding (about 1e-7 relative). The n-grams ending in
    /// w are looked up from the shortest up, stopping at the first miss (no longer one can
    /// exist when the model is suffix-closed); the entries found carry the backoffs the next
    /// word will need, so each word costs about one lookup per matched order plus one. The
    /// home slots of every order are prefetched first, so their cache misses overlap.
    #[inline]
    pub fn score(&self, state: &State, w: u32, out: &mut State) -> f64 {
        if self.hash_unique {
            self.score_with::<false>(state, w, out)
        } else {
            self.score_with::<true>(state, w, out)
        }
    }

    /// Ask the memory system for the slots that scoring `seq[t]` after `seq[..t]` will read
    /// (`seq` starts with `<s>`), so that a caller who knows the next words can overlap their
    /// cache misses with the current word's work.
    #[inline]
    pub fn prefetch(&self, seq: &[u32], t: usize) {
        let n1 = self.meta.order - 1;
        let mut h = hash_start(seq[t]);
        for j in 0..t.min(n1) {
            h = hash_extend(h, seq[t - 1 - j]);
            self.tables[j].prefetch(stored(h));
        }
    }

    /// [`score`](Self::score) through the exact entries (full keys, f64 values): equal to
    /// `log10_prob` up to the order of additions.
    pub fn score_exact(&self, state: &State, w: u32, out: &mut State) -> f64 {
        self.score_with::<true>(state, w, out)
    }

    #[inline(always)]
    fn score_with<const EXACT: bool>(&self, state: &State, w: u32, out: &mut State) -> f64 {
        let n1 = self.meta.order - 1;
        let u = self.unigrams[w as usize];
        let mut logp = u[0];
        let max_ctx = state.len.min(n1);
        let new_len = (max_ctx + 1).min(n1);
        if n1 > 0 {
            out.ctx[0] = w;
            out.backoff[0] = u[1];
        }
        let mut hashes = [0u64; MAX_ORDER - 1];
        let mut h = hash_start(w);
        for (j, hj) in hashes.iter_mut().enumerate().take(max_ctx) {
            h = hash_extend(h, state.ctx[j]);
            *hj = stored(h);
            self.tables[j].prefetch(*hj);
        }
        let mut key = w as u128;
        let mut matched = 0;
        for (j, &hj) in hashes.iter().enumerate().take(max_ctx) {
            let found = if EXACT {
                key |= (state.ctx[j] as u128) << (ID_BITS as usize * (j + 1));
                self.tables[j].get_with_hash(key, hj).map(|e| (e.logp, e.logb))
            } else {
                self.tables[j].get_hashed(hj).map(|s| (s.logp as f64, s.logb as f64))
            };
            match found {
                Some((p, b)) => {
                    logp = p;
                    matched = j + 1;
                    if j + 1 < n1 {
                        out.backoff[j + 1] = b;
                    }
                }
                None if self.meta.suffix_closed => break,
                None => {
                    if j + 1 < n1 {
                        out.backoff[j + 1] = 0.0;
                    }
                }
            }
        }
        for j in matched..max_ctx {
            logp += state.backoff[j];
        }
        for j in 1..new_len {
            out.ctx[j] = state.ctx[j - 1];
        }
        if self.meta.suffix_closed {
            for j in (matched + 1)..new_len {
                out.backoff[j] = 0.0;
            }
        }
        out.len = new_len;
        logp
    }

    /// log10 b of the n-gram with `key` of `order` (0 when it is not stored).
    #[inline]
    fn log10_backoff_key(&self, key: u128, order: usize) -> f64 {
        if order == 1 {
            self.unigrams[key as usize][1]
        } else {
            self.tables[order - 2].get(key).map_or(0.0, |e| e.logb)
        }
    }

    /// The stored log10 probability and backoff of `ngram`, if it is stored.
    pub fn entry(&self, ngram: &[u32]) -> Option<(f64, f64)> {
        match ngram.len() {
            0 => None,
            1 => self.unigrams.get(ngram[0] as usize).map(|u| (u[0], u[1])),
            m if m <= self.meta.order => self.tables[m - 2].get(pack(ngram)).map(|e| (e.logp, e.logb)),
            _ => None,
        }
    }

    /// log10 p(w | context) for every id w (`<s>`: −∞, it is never predicted).
    pub fn distribution(&self, context: &[u32]) -> Vec<f64> {
        (0..self.vocab.len() as u32).map(|w| if w == BOS { f64::NEG_INFINITY } else { self.log10_prob(context, w) }).collect()
    }

    /// The ids of a sentence's units (`<unk>` for unknown ones).
    pub fn ids<S: AsRef<str>>(&self, units: &[S]) -> Vec<u32> {
        units.iter().map(|u| self.vocab.id(u.as_ref())).collect()
    }

    /// Every stored n-gram of order `m` as (ids, log10 p, log10 b), sorted by ids.
    pub fn ngrams(&self, m: usize) -> Vec<(Vec<u32>, f64, f64)> {
        if m == 1 {
            return self.unigrams.iter().enumerate().map(|(i, u)| (vec![i as u32], u[0], u[1])).collect();
        }
        let mut out: Vec<(u128, f64, f64)> = self.tables[m - 2].entries().map(|e| (e.key(), e.logp, e.logb)).collect();
        out.sort_unstable_by_key(|e| e.0);
        out.into_iter().map(|(k, p, b)| (crate::key::unpack(k, m), p, b)).collect()
    }

    pub(crate) fn unigram_slice(&self) -> &[[f64; 2]] {
        &self.unigrams
    }

    pub(crate) fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// Whether `id` is `<unk>`.
    pub fn is_unk(id: u32) -> bool {
        id == UNK
    }
}

impl NgramModel {
    /// Whether every stored n-gram of order ≥ 2 has its suffix stored.
    pub(crate) fn check_suffix_closed(&self) -> bool {
        (2..=self.meta.order).all(|m| {
            self.tables[m - 2].entries().all(|e| {
                let s = crate::key::suffix(e.key(), m);
                if m == 2 {
                    (s as usize) < self.unigrams.len()
                } else {
                    self.tables[m - 3].get(s).is_some()
                }
            })
        })
    }
}
