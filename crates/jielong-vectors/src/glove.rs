//! GloVe (Pennington, Socher and Manning 2014): count how often each pair of words appears
//! within `window` words of each other, each occurrence weighted `1/d` for distance `d`
//! (symmetric: left and right context alike, a line break ends the window, as GloVe's
//! `cooccur` does), then fit `w_i·w̃_j + b_i + b̃_j ≈ log X_ij` by weighted least squares,
//! `f(x) = min(1, (x/x_max)^α)`, with AdaGrad (every parameter starts with a squared-gradient
//! sum of 1, and the sums collect the η-scaled gradients, as `glove.c` does). The pairs are
//! shuffled each epoch and split across threads (Hogwild, like word2vec). The vectors written
//! are `w + w̃`, GloVe's `-model 2`.

use crate::corpus::Corpus;
use crate::embeddings::Embeddings;
use crate::hogwild::SharedMatrix;
use crate::schedule::Progress;
use jielong_core::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GloveConfig {
    pub dim: usize,
    pub window: usize,
    pub x_max: f64,
    pub alpha: f64,
    pub eta: f64,
    pub epochs: usize,
    pub threads: usize,
    pub seed: u64,
}

impl Default for GloveConfig {
    /// GloVe's defaults (`glove.c`): x_max 100, α 0.75, η 0.05, 25 iterations; window 5 here.
    fn default() -> Self {
        GloveConfig { dim: 100, window: 5, x_max: 100.0, alpha: 0.75, eta: 0.05, epochs: 25, threads: 1, seed: 1 }
    }
}

impl GloveConfig {
    pub fn validate(&self) -> Result<()> {
        crate::word2vec::validate_shape(self.dim, self.window, self.epochs)?;
        if self.x_max.is_nan() || self.x_max <= 0.0 {
            return Err(Error::input(format!("--x-max {}: must be positive (100 is GloVe's default)", self.x_max)));
        }
        Ok(())
    }
}

/// Distance-weighted symmetric co-occurrence counts, as `(i, j, X_ij)` sorted by `(i, j)`.
pub fn cooccurrences(corpus: &Corpus, window: usize) -> Vec<(u32, u32, f32)> {
    let mut m: HashMap<u64, f64> = HashMap::new();
    for s in 0..corpus.n_sentences() {
        let sen = corpus.sentence(s);
        for (pos, &w) in sen.iter().enumerate() {
            for d in 1..=window.min(pos) {
                let c = sen[pos - d];
                let inc = 1.0 / d as f64;
                *m.entry(((w as u64) << 32) | c as u64).or_insert(0.0) += inc;
                *m.entry(((c as u64) << 32) | w as u64).or_insert(0.0) += inc;
            }
        }
    }
    let mut v: Vec<(u32, u32, f32)> = m.into_iter().map(|(k, x)| ((k >> 32) as u32, k as u32, x as f32)).collect();
    v.sort_unstable_by_key(|e| (e.0, e.1));
    v
}

/// The weight `f(x)`.
pub fn weight(x: f64, x_max: f64, alpha: f64) -> f64 {
    if x < x_max {
        (x / x_max).powf(alpha)
    } else {
        1.0
    }
}

/// One AdaGrad step on one co-occurrence; returns this pair's cost `½ f(x) (w·w̃ + b + b̃ − log x)²`.
///
/// Layout: row `i` of `params` is `[w_i (dim), b_i]` for words and row `V + j` is `[w̃_j, b̃_j]`
/// for contexts; `gradsq` has the same shape.
///
/// # Safety
/// `i, V + j` must be rows of both matrices (races are Hogwild's).
pub unsafe fn step(params: &SharedMatrix, gradsq: &SharedMatrix, i: usize, j: usize, x: f32, cfg: &GloveConfig, v: usize) -> f64 {
    let dim = params.dim - 1;
    let (w, c) = (params.row(i), params.row(v + j));
    let (gw, gc) = (gradsq.row(i), gradsq.row(v + j));
    let mut diff = *w.add(dim) + *c.add(dim) - (x as f64).ln() as f32;
    for k in 0..dim {
        diff += *w.add(k) * *c.add(k);
    }
    let fdiff = weight(x as f64, cfg.x_max, cfg.alpha) as f32 * diff;
    let cost = 0.5 * fdiff as f64 * diff as f64;
    let fdiff = fdiff * cfg.eta as f32;
    for k in 0..dim {
        let t1 = fdiff * *c.add(k);
        let t2 = fdiff * *w.add(k);
        let u1 = t1 / (*gw.add(k)).sqrt();
        let u2 = t2 / (*gc.add(k)).sqrt();
        *gw.add(k) += t1 * t1;
        *gc.add(k) += t2 * t2;
        *w.add(k) -= u1;
        *c.add(k) -= u2;
    }
    *w.add(dim) -= fdiff / (*gw.add(dim)).sqrt();
    *c.add(dim) -= fdiff / (*gc.add(dim)).sqrt();
    *gw.add(dim) += fdiff * fdiff;
    *gc.add(dim) += fdiff * fdiff;
    cost
}

pub struct GloveTrained {
    pub embeddings: Embeddings,
    pub seconds: f64,
    pub pairs: usize,
    /// Mean cost per pair in each epoch.
    pub costs: Vec<f64>,
}

pub fn train(corpus: &Corpus, cfg: &GloveConfig, progress: &mut dyn FnMut(Progress)) -> Result<GloveTrained> {
    cfg.validate()?;
    let start = Instant::now();
    let mut pairs = cooccurrences(corpus, cfg.window);
    if pairs.is_empty() {
        return Err(Error::input("no two words ever appear within the window of each other: GloVe has nothing to fit (give longer lines or more text)"));
    }
    let v = corpus.vocab.len();
    let dim = cfg.dim;
    let mut rng = jielong_core::Rng::derive(cfg.seed, &[7]);
    let init: Vec<f32> = (0..2 * v * (dim + 1)).map(|_| (rng.next_f32() - 0.5) / dim as f32).collect();
    let params = SharedMatrix::new(init, 2 * v, dim + 1);
    let gradsq = SharedMatrix::new(vec![1.0; 2 * v * (dim + 1)], 2 * v, dim + 1);
    let threads = cfg.threads.max(1);
    let total = (pairs.len() * cfg.epochs) as u64;
    let done = AtomicU64::new(0);
    let mut costs = Vec::new();
    for epoch in 0..cfg.epochs {
        // Fisher–Yates with the run's generator: the same seed gives the same order.
        let mut r = jielong_core::Rng::derive(cfg.seed, &[8, epoch as u64]);
        for k in (1..pairs.len()).rev() {
            pairs.swap(k, r.below(k as u64 + 1) as usize);
        }
        let chunk = pairs.len().div_ceil(threads);
        let cost = std::thread::scope(|scope| {
            let handles: Vec<_> = pairs
                .chunks(chunk)
                .map(|part| {
                    let (params, gradsq, done) = (&params, &gradsq, &done);
                    scope.spawn(move || {
                        let mut cost = 0.0;
                        for (n, &(i, j, x)) in part.iter().enumerate() {
                            // SAFETY: i, j < V, the matrices have 2V rows.
                            cost += unsafe { step(params, gradsq, i as usize, j as usize, x, cfg, v) };
                            if n % 10_000 == 9_999 {
                                done.fetch_add(10_000, Ordering::Relaxed);
                            }
                        }
                        done.fetch_add((part.len() % 10_000) as u64, Ordering::Relaxed);
                        cost
                    })
                })
                .collect();
            loop {
                let finished = handles.iter().all(|h| h.is_finished());
                progress(Progress { words_done: done.load(Ordering::Relaxed), words_total: total, alpha: cfg.eta as f32, seconds: start.elapsed().as_secs_f64() });
                if finished {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).sum::<f64>()
        });
        costs.push(cost / pairs.len() as f64);
    }
    let p = params.into_vec();
    let mut data = Vec::with_capacity(v * dim);
    for i in 0..v {
        let w = &p[i * (dim + 1)..i * (dim + 1) + dim];
        let c = &p[(v + i) * (dim + 1)..(v + i) * (dim + 1) + dim];
        data.extend(w.iter().zip(c).map(|(a, b)| a + b));
    }
    Ok(GloveTrained { embeddings: Embeddings::new(corpus.vocab.words.clone(), dim, data), seconds: start.elapsed().as_secs_f64(), pairs: pairs.len(), costs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::CorpusOptions;
    use jielong_text::Units;

    #[test]
    fn glove_cooccurrence_weights_are_one_over_distance() {
        let c = Corpus::build(["a b c\nc a"], &CorpusOptions { units: Units::Words, lowercase: false, min_count: 1 }).unwrap();
        // ids: a=0 (2), c=1 (2), b=2 (1). Line 1: a-b at 1, b-c at 1, a-c at 2; line 2: c-a at 1.
        let x: HashMap<(u32, u32), f32> = cooccurrences(&c, 2).into_iter().map(|(i, j, x)| ((i, j), x)).collect();
        assert_eq!(x[&(0, 2)], 1.0);
        assert_eq!(x[&(2, 0)], 1.0);
        assert_eq!(x[&(2, 1)], 1.0);
        assert_eq!(x[&(0, 1)], 1.5); // 1/2 in line 1, 1 in line 2
        assert_eq!(x[&(1, 0)], 1.5);
        assert_eq!(x.len(), 6, "{x:?}");
        // Window 1 drops the distance-2 pair.
        assert_eq!(cooccurrences(&c, 1).iter().find(|e| (e.0, e.1) == (0, 1)).unwrap().2, 1.0);
        assert_eq!(weight(50.0, 100.0, 0.75), 0.5f64.powf(0.75));
        assert_eq!(weight(150.0, 100.0, 0.75), 1.0);
    }

    /// The first AdaGrad step (squared sums start at 1) is −η times the gradient of the pair's
    /// cost, checked against central finite differences.
    #[test]
    fn glove_step_is_minus_eta_times_the_gradient() {
        let dim = 5;
        let cfg = GloveConfig { dim, eta: 1e-3, x_max: 10.0, ..Default::default() };
        let mut rng = jielong_core::Rng::new(5);
        let p0: Vec<f32> = (0..2 * (dim + 1)).map(|_| rng.normal() * 0.3).collect();
        let x = 4.0f32;
        let cost = |p: &[f64]| {
            let d: f64 = (0..dim).map(|k| p[k] * p[dim + 1 + k]).sum::<f64>() + p[dim] + p[2 * dim + 1] - (x as f64).ln();
            0.5 * weight(x as f64, cfg.x_max, cfg.alpha) * d * d
        };
        // V = 1: row 0 is the word, row 1 its context.
        let params = SharedMatrix::new(p0.clone(), 2, dim + 1);
        let gradsq = SharedMatrix::new(vec![1.0; 2 * (dim + 1)], 2, dim + 1);
        let c = unsafe { step(&params, &gradsq, 0, 0, x, &cfg, 1) };
        let p64: Vec<f64> = p0.iter().map(|&v| v as f64).collect();
        assert!((c - cost(&p64)).abs() < 1e-6);
        let p1 = params.into_vec();
        for k in 0..p0.len() {
            let (mut a, mut b) = (p64.clone(), p64.clone());
            a[k] += 1e-6;
            b[k] -= 1e-6;
            let grad = (cost(&a) - cost(&b)) / 2e-6;
            let got = (p1[k] - p0[k]) as f64 / cfg.eta;
            assert!((got + grad).abs() < 2e-3 * (1.0 + grad.abs()), "param {k}: {got} vs {}", -grad);
        }
    }
}
