//! Beam search: keep the `beams` most probable partial continuations, extend each by every
//! token, keep the best again. Finished hypotheses (an end-of-text id) are scored with a length
//! penalty, score = log p / length^α (α > 0 favours longer output), as in Hugging Face
//! `generate`. All beams of a step share one forward pass; a beam that forks copies its KV cache
//! (the caches are written in place, so a fork must own its buffers).

use crate::engine::{Engine, Sequence};
use crate::sampler::NoRepeatNgram;
use jielong_core::{Error, Result};

#[derive(Debug, Clone)]
pub struct BeamOptions {
    pub beams: usize,
    pub max_tokens: usize,
    pub length_penalty: f32,
    /// Stop as soon as `beams` hypotheses are finished (true), or only when no running beam can
    /// still beat the worst of them (false).
    pub early_stopping: bool,
    pub stop_ids: Vec<u32>,
    pub no_repeat_ngram: usize,
}

#[derive(Debug, Clone)]
pub struct Hypothesis {
    /// Generated tokens (without the end-of-text id).
    pub tokens: Vec<u32>,
    /// Sum of the tokens' log-probabilities (the end-of-text id included when it ended).
    pub logprob: f64,
    /// logprob / length^length_penalty.
    pub score: f64,
    pub finished: bool,
}

fn score(logprob: f64, len: usize, alpha: f32) -> f64 {
    logprob / (len.max(1) as f64).powf(alpha as f64)
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
    row.iter().map(|&x| x as f64 - lse).collect()
}

/// The best hypotheses, best first (at most `beams`).
pub fn beam_search(engine: &Engine, prompt: Vec<u32>, opts: &BeamOptions) -> Result<Vec<Hypothesis>> {
    beam_search_from(engine, engine.sequence(prompt)?, opts)
}

/// Beam search from a sequence the caller made (`Engine::sequence_with_state`: a seq2seq
/// model's encoded source); the beams fork its state.
pub fn beam_search_from(engine: &Engine, start: Sequence, opts: &BeamOptions) -> Result<Vec<Hypothesis>> {
    let mut search = BeamSearch::new(start, opts.clone())?;
    while !search.is_finished() {
        let rows = engine.step(&mut search.sequences_mut())?;
        search.advance(&rows);
    }
    Ok(search.finish())
}

/// A beam search advanced one step at a time by its caller, so that its beams can share a
/// forward pass with other sequences (the server's continuous batching): feed
/// `sequences_mut` to `Engine::step`, hand the rows back to `advance`, repeat until
/// `is_finished`, then take the hypotheses with `finish`.
#[derive(Debug)]
pub struct BeamSearch {
    opts: BeamOptions,
    /// Running beams and their total log-probabilities.
    running: Vec<(Sequence, f64)>,
    done: Vec<Hypothesis>,
    step: usize,
    finished: bool,
}

impl BeamSearch {
    pub fn new(start: Sequence, opts: BeamOptions) -> Result<Self> {
        if opts.beams == 0 {
            return Err(Error::input("--beams 0: beam search needs at least one beam"));
        }
        let finished = opts.max_tokens == 0;
        Ok(Self { opts, running: vec![(start, 0.0)], done: Vec::new(), step: 0, finished })
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The running beams, to be advanced together by one `Engine::step`.
    pub fn sequences_mut(&mut self) -> Vec<&mut Sequence> {
        self.running.iter_mut().map(|(s, _)| s).collect()
    }

    /// Beams running now (rows the next `advance` expects).
    pub fn n_running(&self) -> usize {
        self.running.len()
    }

    /// Extend every beam by every token of its row of logits (one row per `sequences_mut`
    /// entry, in order) and keep the best; sets `is_finished` when the search is over.
    pub fn advance(&mut self, rows: &[Vec<f32>]) {
        let (opts, k) = (&self.opts, self.opts.beams);
        let step = self.step;
        self.step += 1;
        let running = &self.running;
        // Every (beam, token) extension: (total log-prob, beam, token).
        let mut cands: Vec<(f64, usize, u32)> = Vec::with_capacity(rows.len() * rows.first().map_or(0, |r| r.len()));
        for (b, row) in rows.iter().enumerate() {
            let mut lp = log_softmax(row);
            if opts.no_repeat_ngram > 0 {
                let mut ngram = NoRepeatNgram::new(opts.no_repeat_ngram);
                running[b].0.tokens.iter().for_each(|&t| crate::sampler::Sampler::accept(&mut ngram, t));
                for id in ngram.banned() {
                    lp[id as usize] = f64::NEG_INFINITY;
                }
            }
            let base = running[b].1;
            cands.extend(lp.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(t, l)| (base + l, b, t as u32)));
        }
        let want = (2 * k).min(cands.len());
        if want == 0 {
            self.finished = true;
            return;
        }
        let order = |a: &(f64, usize, u32), b: &(f64, usize, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2));
        if want < cands.len() {
            cands.select_nth_unstable_by(want - 1, order);
            cands.truncate(want);
        }
        cands.sort_by(order);

        let mut next: Vec<(Sequence, f64)> = Vec::with_capacity(k);
        for (rank, &(lp, b, tok)) in cands.iter().enumerate() {
            if opts.stop_ids.contains(&tok) {
                // Only an end among the top `beams` counts (as HF): it beat the running beams.
                if rank < k {
                    let tokens = running[b].0.generated().to_vec();
                    self.done.push(Hypothesis { score: score(lp, tokens.len(), opts.length_penalty), tokens, logprob: lp, finished: true });
                }
                continue;
            }
            let mut seq = running[b].0.clone();
            seq.push(tok);
            next.push((seq, lp));
            if next.len() == k {
                break;
            }
        }
        self.running = next;
        let done = &mut self.done;
        done.sort_by(|a, b| b.score.total_cmp(&a.score));
        done.truncate(k);
        if self.running.is_empty() || self.step >= opts.max_tokens {
            self.finished = true;
            return;
        }
        if done.len() == k {
            if opts.early_stopping {
                self.finished = true;
                return;
            }
            // The best a running beam can still do: its score now if α ≤ 0 (log-probs only
            // fall), or at the longest length when α > 0.
            let len = if opts.length_penalty > 0.0 { opts.max_tokens } else { step + 1 };
            let best_running = self.running.iter().map(|(_, lp)| score(*lp, len, opts.length_penalty)).fold(f64::NEG_INFINITY, f64::max);
            if done[k - 1].score >= best_running {
                self.finished = true;
            }
        }
    }

    /// The best hypotheses, best first (at most `beams`): finished ones and the beams still
    /// running when the search stopped.
    pub fn finish(self) -> Vec<Hypothesis> {
        let (k, alpha) = (self.opts.beams, self.opts.length_penalty);
        let mut done = self.done;
        for (seq, lp) in self.running {
            let tokens = seq.generated().to_vec();
            done.push(Hypothesis { score: score(lp, tokens.len(), alpha), tokens, logprob: lp, finished: false });
        }
        done.sort_by(|a, b| b.score.total_cmp(&a.score));
        done.truncate(k);
        done
    }
}
