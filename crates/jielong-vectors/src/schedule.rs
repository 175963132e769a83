//! Running SGD over a corpus on several threads, as word2vec.c does: the sentences are cut into
//! `threads` contiguous parts of about the same number of words, each thread runs every epoch
//! over its part, and the learning rate falls linearly from `alpha` to `min_alpha` with the
//! words processed by all threads together (a shared counter, updated every 10,000 words).
//! The calling thread reports progress while the workers run.

use crate::corpus::Corpus;
use crate::sampling::Lcg;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the progress callback sees.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub words_done: u64,
    pub words_total: u64,
    pub alpha: f32,
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub epochs: usize,
    pub threads: usize,
    pub alpha: f32,
    pub min_alpha: f32,
    pub seed: u64,
}

impl Schedule {
    /// Learning rate after `done` of `total` words.
    pub fn alpha_at(&self, done: u64, total: u64) -> f32 {
        let frac = (done as f64 / total.max(1) as f64).min(1.0);
        (self.alpha as f64 - (self.alpha - self.min_alpha) as f64 * frac).max(self.min_alpha as f64) as f32
    }
}

/// Split sentence indices into `n` contiguous ranges of about equal word counts.
pub fn split_by_words(corpus: &Corpus, n: usize) -> Vec<std::ops::Range<usize>> {
    let total = corpus.ids.len();
    let s = corpus.n_sentences();
    let mut out = Vec::with_capacity(n);
    let mut begin = 0;
    for t in 1..=n {
        let target = total * t / n;
        let mut end = begin;
        while end < s && (t == n || corpus.starts[end + 1] <= target) {
            end += 1;
        }
        out.push(begin..end);
        begin = end;
    }
    out
}

/// Run `work(state, rng, alpha, sentence)` over every sentence, `epochs` times, on
/// `threads` threads. `init(thread)` makes each thread's scratch state. Returns the seconds
/// spent.
pub fn run<S, I, W>(corpus: &Corpus, sched: &Schedule, init: I, work: W, progress: &mut dyn FnMut(Progress)) -> f64
where
    I: Fn(usize) -> S + Sync,
    W: Fn(&mut S, &mut Lcg, f32, &[u32]) + Sync,
{
    let words_total = corpus.ids.len() as u64 * sched.epochs as u64;
    let done = AtomicU64::new(0);
    let parts = split_by_words(corpus, sched.threads.max(1));
    let start = Instant::now();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (t, range) in parts.iter().enumerate() {
            let (init, work, done) = (&init, &work, &done);
            let range = range.clone();
            handles.push(scope.spawn(move || {
                let mut state = init(t);
                let mut rng = Lcg(jielong_core::Rng::derive(sched.seed, &[t as u64]).next_u64());
                let mut pending = 0u64;
                let mut alpha = sched.alpha;
                for _epoch in 0..sched.epochs {
                    for i in range.clone() {
                        let sentence = corpus.sentence(i);
                        work(&mut state, &mut rng, alpha, sentence);
                        pending += sentence.len() as u64;
                        if pending >= 10_000 {
                            let now = done.fetch_add(pending, Ordering::Relaxed) + pending;
                            pending = 0;
                            alpha = sched.alpha_at(now, words_total);
                        }
                    }
                }
                done.fetch_add(pending, Ordering::Relaxed);
            }));
        }
        loop {
            let finished = handles.iter().all(|h| h.is_finished());
            let d = done.load(Ordering::Relaxed);
            progress(Progress { words_done: d, words_total, alpha: sched.alpha_at(d, words_total), seconds: start.elapsed().as_secs_f64() });
            if finished {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for h in handles {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
    });
    start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::CorpusOptions;
    use jielong_text::Units;

    #[test]
    fn schedule_alpha_falls_linearly_to_the_floor() {
        let s = Schedule { epochs: 1, threads: 1, alpha: 0.025, min_alpha: 0.0001, seed: 0 };
        assert_eq!(s.alpha_at(0, 100), 0.025);
        assert!((s.alpha_at(50, 100) - 0.01255).abs() < 1e-7);
        assert!((s.alpha_at(100, 100) - 0.0001).abs() < 1e-9);
        assert!((s.alpha_at(200, 100) - 0.0001).abs() < 1e-9);
    }

    #[test]
    fn schedule_parts_cover_every_sentence_once() {
        let text: String = (0..100).map(|i| format!("{}\n", "w ".repeat(1 + i % 7))).collect();
        let c = Corpus::build([text.as_str()], &CorpusOptions { units: Units::Words, lowercase: false, min_count: 1 }).unwrap();
        for n in [1, 2, 3, 8] {
            let parts = split_by_words(&c, n);
            assert_eq!(parts.len(), n);
            assert_eq!(parts[0].start, 0);
            assert_eq!(parts[n - 1].end, c.n_sentences());
            for w in parts.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
        }
        let seen = AtomicU64::new(0);
        let s = Schedule { epochs: 2, threads: 3, alpha: 0.1, min_alpha: 0.0, seed: 1 };
        run(&c, &s, |_| (), |_, _, _, sen| { seen.fetch_add(sen.len() as u64, Ordering::Relaxed); }, &mut |_| {});
        assert_eq!(seen.load(Ordering::Relaxed), 2 * c.ids.len() as u64);
    }
}
