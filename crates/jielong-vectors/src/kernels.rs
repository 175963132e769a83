//! The inner loop of word2vec and fastText: one logistic classifier step, used by negative
//! sampling (a positive target and `k` sampled negatives) and by hierarchical softmax (the
//! classifiers along the target's Huffman path).
//!
//! For an input vector `h` (a word's row in skip-gram, the mean of the context rows in CBOW,
//! the mean of a word's n-gram rows in fastText) and an output row `u` with label `y ∈ {0, 1}`:
//! the loss is `−y·log σ(h·u) − (1 − y)·log σ(−h·u)`, whose gradient in the score `f = h·u` is
//! `σ(f) − y`. With `g = (y − σ(f))·α` the step is `u += g·h` and `e += g·u` (the old `u`),
//! `e` collecting the step for `h`, applied by the caller once every classifier has been seen
//! (as word2vec.c does, so every classifier sees the same `h`).

use crate::hogwild::SharedMatrix;
use crate::sigmoid::Sigmoid;

/// Dot product with eight independent accumulators (so the compiler vectorises it). On x86-64
/// machines with AVX2 and FMA (checked once at run time) the same loop runs compiled for them:
/// 8-wide vectors instead of the baseline's 4-wide SSE2 (Rust does not fuse `a·b + c` on its
/// own, so the results are the same bits either way).
///
/// # Safety
/// `a` and `b` must each point to `n` readable floats.
#[inline]
pub unsafe fn dot(a: *const f32, b: *const f32, n: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return dot_avx2(a, b, n);
    }
    dot_body(a, b, n)
}

/// `y += a·x` (dispatched like [`dot`]).
///
/// # Safety
/// `x` must point to `n` readable floats and `y` to `n` writable ones.
#[inline]
pub unsafe fn axpy(a: f32, x: *const f32, y: *mut f32, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return axpy_avx2(a, x, y, n);
    }
    axpy_body(a, x, y, n)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static STATE: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 no, 2 yes
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let yes = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            STATE.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
        s => s == 2,
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: *const f32, b: *const f32, n: usize) -> f32 {
    dot_body(a, b, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(a: f32, x: *const f32, y: *mut f32, n: usize) {
    axpy_body(a, x, y, n)
}

#[inline(always)]
unsafe fn dot_body(a: *const f32, b: *const f32, n: usize) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        for (l, slot) in acc.iter_mut().enumerate() {
            let k = c * 8 + l;
            *slot += *a.add(k) * *b.add(k);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for k in chunks * 8..n {
        s += *a.add(k) * *b.add(k);
    }
    s
}

#[inline(always)]
unsafe fn axpy_body(a: f32, x: *const f32, y: *mut f32, n: usize) {
    for k in 0..n {
        *y.add(k) += a * *x.add(k);
    }
}

/// One classifier step (see the module comment). `skip_outside`: hierarchical softmax's rule
/// of skipping scores outside the sigmoid table. Returns the loss of this classifier before the
/// step (for reporting), computed only when `want_loss`.
///
/// # Safety
/// `h` must point to `dim` readable floats that do not overlap `u`'s row... except through the
/// documented Hogwild races; `row < out.rows`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub unsafe fn classifier_step(
    h: *const f32,
    out: &SharedMatrix,
    row: usize,
    label: f32,
    alpha: f32,
    sig: &Sigmoid,
    skip_outside: bool,
    e: &mut [f32],
) {
    let dim = out.dim;
    let u = out.row(row);
    let f = dot(h, u, dim);
    if skip_outside && !sig.in_range(f) {
        return;
    }
    let g = (label - sig.sigma(f)) * alpha;
    axpy(g, u, e.as_mut_ptr(), dim);
    axpy(g, h, u, dim);
}

/// The loss of one classifier, `−log σ(±f)`, for tests and reports.
pub fn classifier_loss(f: f64, label: f64) -> f64 {
    let s = 1.0 / (1.0 + (-f).exp());
    -(label * s.ln() + (1.0 - label) * (1.0 - s).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss_of(h: &[f64], us: &[Vec<f64>], labels: &[f64]) -> f64 {
        us.iter()
            .zip(labels)
            .map(|(u, &y)| classifier_loss(h.iter().zip(u).map(|(a, b)| a * b).sum(), y))
            .sum()
    }

    /// Negative sampling's (and hierarchical softmax's) step equals −α times the gradient of
    /// the summed logistic losses, checked against central finite differences in f64.
    #[test]
    fn kernels_classifier_steps_are_minus_alpha_times_the_gradient() {
        let dim = 7;
        let mut rng = jielong_core::Rng::new(3);
        let h: Vec<f32> = (0..dim).map(|_| rng.normal() * 0.5).collect();
        let rows = 3; // one positive, two negatives (or three Huffman nodes)
        let u0: Vec<f32> = (0..rows * dim).map(|_| rng.normal() * 0.5).collect();
        let labels = [1.0f32, 0.0, 0.0];
        let alpha = 1e-3f32;
        let out = SharedMatrix::new(u0.clone(), rows, dim);
        let sig = Sigmoid::new(true);
        let mut e = vec![0f32; dim];
        for (r, &label) in labels.iter().enumerate() {
            unsafe { classifier_step(h.as_ptr(), &out, r, label, alpha, &sig, false, &mut e) };
        }
        let u1 = out.into_vec();

        let h64: Vec<f64> = h.iter().map(|&x| x as f64).collect();
        let us: Vec<Vec<f64>> = (0..rows).map(|r| u0[r * dim..(r + 1) * dim].iter().map(|&x| x as f64).collect()).collect();
        let l64: Vec<f64> = labels.iter().map(|&x| x as f64).collect();
        let eps = 1e-6;
        for k in 0..dim {
            let (mut hp, mut hm) = (h64.clone(), h64.clone());
            hp[k] += eps;
            hm[k] -= eps;
            let grad = (loss_of(&hp, &us, &l64) - loss_of(&hm, &us, &l64)) / (2.0 * eps);
            let step = e[k] as f64 / alpha as f64;
            assert!((step + grad).abs() < 1e-4, "h[{k}]: step/α {step} vs −grad {}", -grad);
        }
        for r in 0..rows {
            for k in 0..dim {
                let (mut up, mut um) = (us.clone(), us.clone());
                up[r][k] += eps;
                um[r][k] -= eps;
                let grad = (loss_of(&h64, &up, &l64) - loss_of(&h64, &um, &l64)) / (2.0 * eps);
                let step = (u1[r * dim + k] - u0[r * dim + k]) as f64 / alpha as f64;
                assert!((step + grad).abs() < 2e-3, "u[{r}][{k}]: step/α {step} vs −grad {}", -grad);
            }
        }
    }

    #[test]
    fn kernels_dot_and_axpy_match_plain_loops() {
        for n in [1usize, 7, 8, 9, 100, 300] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let got = unsafe { dot(a.as_ptr(), b.as_ptr(), n) };
            assert!((got as f64 - want).abs() < 1e-4, "{n}");
            let mut y = b.clone();
            unsafe { axpy(0.5, a.as_ptr(), y.as_mut_ptr(), n) };
            for k in 0..n {
                assert_eq!(y[k], b[k] + 0.5 * a[k]);
            }
        }
    }
}
