//! Exact t-SNE (van der Maaten and Hinton, 2008) to two dimensions: a map that keeps each word's
//! near neighbours near, where PCA keeps the directions of largest variance.
//!
//! 1. Affinities: for each point, a Gaussian over the squared distances to the others whose
//!    width is found by bisection so that its entropy is ln(perplexity) (a perplexity of 30 means
//!    "about 30 effective neighbours"); then symmetrised, `p_ij = (p_j|i + p_i|j) / 2n`.
//! 2. The map starts from small seeded Gaussian noise (σ = 10⁻⁴) and moves by gradient descent on
//!    KL(P‖Q), where `q_ij ∝ (1 + ‖y_i − y_j‖²)⁻¹` (Student t with one degree of freedom, whose
//!    heavy tail lets far clusters stay far apart), with the usual schedule: P multiplied by 12
//!    for the first 250 iterations ("early exaggeration", momentum 0.5), then momentum 0.8, and
//!    per-coordinate adaptive gains; the learning rate is scikit-learn's `auto`,
//!    max(n / 12 / 4, 50).
//!
//! Exact means O(n²) time and memory per iteration: right for the tens to a few thousand words a
//! picture can show (Barnes–Hut's approximation pays off beyond that).

use jielong_core::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TsneConfig {
    /// Effective number of neighbours each point's Gaussian covers; must be below the number of
    /// points (5–50 is usual; 30 is the common default).
    pub perplexity: f64,
    /// Gradient steps (the first 250 with early exaggeration); 1000 is the common default.
    pub iterations: usize,
    pub seed: u64,
}

impl Default for TsneConfig {
    fn default() -> Self {
        TsneConfig { perplexity: 30.0, iterations: 1000, seed: 1 }
    }
}

const EXAGGERATION: f64 = 12.0;
const EXAGGERATION_ITERS: usize = 250;

/// Squared Euclidean distances between all rows (n × n, row-major).
fn squared_distances(rows: &[Vec<f32>]) -> Vec<f64> {
    let n = rows.len();
    let mut d = vec![0f64; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let s: f64 = rows[i].iter().zip(&rows[j]).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
            d[i * n + j] = s;
            d[j * n + i] = s;
        }
    }
    d
}

/// The conditional affinities `p_j|i` (row i of the result), each row's Gaussian precision
/// found by bisection so that the row's entropy (in nats) is ln(perplexity).
pub fn conditional_affinities(dist: &[f64], n: usize, perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let mut p = vec![0f64; n * n];
    for i in 0..n {
        let row = &dist[i * n..(i + 1) * n];
        let (mut beta, mut lo, mut hi) = (1.0f64, 0.0f64, f64::INFINITY);
        // Distances relative to the nearest other point, so exp() never underflows to all zeros.
        let dmin = row.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &d)| d).fold(f64::INFINITY, f64::min);
        for _ in 0..200 {
            let (mut sum, mut weighted) = (0f64, 0f64);
            for (j, &d) in row.iter().enumerate() {
                if j != i {
                    let e = (-(d - dmin) * beta).exp();
                    sum += e;
                    weighted += (d - dmin) * e;
                }
            }
            // H = ln Σ e + β · Σ d e / Σ e
            let h = sum.ln() + beta * weighted / sum;
            if (h - target).abs() < 1e-10 {
                break;
            }
            if h > target {
                lo = beta;
                beta = if hi.is_finite() { (beta + hi) / 2.0 } else { beta * 2.0 };
            } else {
                hi = beta;
                beta = (beta + lo) / 2.0;
            }
        }
        let mut sum = 0f64;
        for (j, &d) in row.iter().enumerate() {
            if j != i {
                let e = (-(d - dmin) * beta).exp();
                p[i * n + j] = e;
                sum += e;
            }
        }
        p[i * n..(i + 1) * n].iter_mut().for_each(|x| *x /= sum);
    }
    p
}

/// Map `rows` (n points of any dimension) to two dimensions with exact t-SNE.
pub fn tsne_2d(rows: &[Vec<f32>], cfg: &TsneConfig) -> Result<Vec<(f64, f64)>> {
    let n = rows.len();
    if !(cfg.perplexity.is_finite() && cfg.perplexity >= 1.0) {
        return Err(Error::input(format!("--perplexity {}: must be at least 1 (30 is usual)", cfg.perplexity)));
    }
    if n > 1 && cfg.perplexity >= n as f64 {
        return Err(Error::input(format!(
            "--perplexity {} is not below the number of words ({n}): lower it or draw more words",
            cfg.perplexity
        )));
    }
    if n < 2 {
        return Ok(vec![(0.0, 0.0); n]);
    }
    let cond = conditional_affinities(&squared_distances(rows), n, cfg.perplexity);
    let mut p = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            p[i * n + j] = ((cond[i * n + j] + cond[j * n + i]) / (2.0 * n as f64)).max(1e-12);
        }
    }
    let mut rng = jielong_core::Rng::derive(cfg.seed, &[0x7453_4e45]);
    let mut y: Vec<f64> = (0..2 * n).map(|_| rng.normal() as f64 * 1e-4).collect();
    let mut update = vec![0f64; 2 * n];
    let mut gains = vec![1f64; 2 * n];
    let mut grad = vec![0f64; 2 * n];
    let mut num = vec![0f64; n * n];
    let eta = (n as f64 / EXAGGERATION / 4.0).max(50.0);
    for it in 0..cfg.iterations {
        let (exag, momentum) = if it < EXAGGERATION_ITERS { (EXAGGERATION, 0.5) } else { (1.0, 0.8) };
        let mut z = 0f64;
        for i in 0..n {
            for j in i + 1..n {
                let (dx, dy) = (y[2 * i] - y[2 * j], y[2 * i + 1] - y[2 * j + 1]);
                let q = 1.0 / (1.0 + dx * dx + dy * dy);
                num[i * n + j] = q;
                num[j * n + i] = q;
                z += 2.0 * q;
            }
        }
        grad.iter_mut().for_each(|g| *g = 0.0);
        for i in 0..n {
            let (mut gx, mut gy) = (0f64, 0f64);
            for j in 0..n {
                if j != i {
                    let q = num[i * n + j];
                    let m = (exag * p[i * n + j] - q / z) * q;
                    gx += m * (y[2 * i] - y[2 * j]);
                    gy += m * (y[2 * i + 1] - y[2 * j + 1]);
                }
            }
            grad[2 * i] = 4.0 * gx;
            grad[2 * i + 1] = 4.0 * gy;
        }
        for (((yk, uk), gk), &dk) in y.iter_mut().zip(update.iter_mut()).zip(gains.iter_mut()).zip(&grad) {
            *gk = if (dk > 0.0) != (*uk > 0.0) { *gk + 0.2 } else { (*gk * 0.8).max(0.01) };
            *uk = momentum * *uk - eta * *gk * dk;
            *yk += *uk;
        }
        // Keep the map centred (the objective does not care where it sits).
        for c in 0..2 {
            let mean = (0..n).map(|i| y[2 * i + c]).sum::<f64>() / n as f64;
            (0..n).for_each(|i| y[2 * i + c] -= mean);
        }
    }
    Ok((0..n).map(|i| (y[2 * i], y[2 * i + 1])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsne_affinities_have_the_asked_perplexity() {
        let rows: Vec<Vec<f32>> = (0..40).map(|i| vec![(i as f32 * 0.37).sin() * 3.0, (i as f32 * 0.11).cos(), i as f32 * 0.05]).collect();
        let n = rows.len();
        let p = conditional_affinities(&squared_distances(&rows), n, 10.0);
        for i in 0..n {
            let row = &p[i * n..(i + 1) * n];
            assert_eq!(row[i], 0.0);
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let h: f64 = -row.iter().filter(|&&x| x > 0.0).map(|&x| x * x.ln()).sum::<f64>();
            assert!((h.exp() - 10.0).abs() < 1e-6, "row {i}: perplexity {}", h.exp());
        }
    }

    /// Three clusters in 20 dimensions whose centres are further apart than their spread.
    fn planted(seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = jielong_core::Rng::new(seed);
        let centres: Vec<Vec<f32>> = (0..3).map(|_| (0..20).map(|_| rng.normal() * 3.0).collect()).collect();
        let mut rows = Vec::new();
        let mut label = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            for _ in 0..15 {
                rows.push(centre.iter().map(|x| x + rng.normal()).collect());
                label.push(c);
            }
        }
        (rows, label)
    }

    #[test]
    fn tsne_keeps_planted_clusters_together() {
        let (rows, label) = planted(5);
        let cfg = TsneConfig { perplexity: 8.0, iterations: 500, seed: 3 };
        let y = tsne_2d(&rows, &cfg).unwrap();
        let dist = |a: (f64, f64), b: (f64, f64)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
        for (i, (&yi, &li)) in y.iter().zip(&label).enumerate() {
            let mean_to = |c: usize| {
                let d: Vec<f64> = (0..y.len()).filter(|&j| j != i && label[j] == c).map(|j| dist(yi, y[j])).collect();
                d.iter().sum::<f64>() / d.len() as f64
            };
            let own = mean_to(li);
            for c in (0..3).filter(|&c| c != li) {
                assert!(own < mean_to(c), "point {i} is closer to cluster {c} ({}) than to its own ({own})", mean_to(c));
            }
        }
        // Seeded: the same map again; another seed, another map.
        assert_eq!(tsne_2d(&rows, &cfg).unwrap(), y);
        assert_ne!(tsne_2d(&rows, &TsneConfig { seed: 4, ..cfg }).unwrap(), y);
    }

    #[test]
    fn tsne_refuses_a_perplexity_too_large() {
        let (rows, _) = planted(1);
        let e = tsne_2d(&rows, &TsneConfig { perplexity: 45.0, ..Default::default() }).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("not below the number of words (45)"), "{e}");
        assert!(tsne_2d(&rows, &TsneConfig { perplexity: 0.5, ..Default::default() }).is_err());
    }
}
