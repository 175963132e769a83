//! The logistic function, as a lookup table (word2vec.c's 1000 entries over [−6, 6]) or exact.
//! The table is what both reference tools use; `exact` exists for the gradient checks and to
//! measure what the table buys (BENCHMARKS.md).

pub const MAX_EXP: f32 = 6.0;
const TABLE_SIZE: usize = 1000;

#[derive(Debug, Clone)]
pub struct Sigmoid {
    table: Vec<f32>,
    exact: bool,
}

impl Sigmoid {
    pub fn new(exact: bool) -> Self {
        let table = (0..TABLE_SIZE)
            .map(|i| {
                let x = ((i as f64 / TABLE_SIZE as f64) * 2.0 - 1.0) * MAX_EXP as f64;
                let e = x.exp();
                (e / (e + 1.0)) as f32
            })
            .collect();
        Sigmoid { table, exact }
    }

    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// σ(x); with the table, 0 below −6 and 1 above 6 (word2vec.c clips negative-sampling
    /// gradients this way).
    #[inline]
    pub fn sigma(&self, x: f32) -> f32 {
        if self.exact {
            1.0 / (1.0 + (-x).exp())
        } else if x >= MAX_EXP {
            1.0
        } else if x <= -MAX_EXP {
            0.0
        } else {
            self.table[((x + MAX_EXP) * (TABLE_SIZE as f32 / MAX_EXP / 2.0)) as usize]
        }
    }

    /// Hierarchical softmax skips nodes whose score is outside the table (word2vec.c, gensim).
    #[inline]
    pub fn in_range(&self, x: f32) -> bool {
        self.exact || (x > -MAX_EXP && x < MAX_EXP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_table_is_within_a_step_of_exact() {
        let t = Sigmoid::new(false);
        let e = Sigmoid::new(true);
        for i in -599..600 {
            let x = i as f32 / 100.0;
            // The table's step is 0.012 in x, and σ' ≤ 1/4.
            assert!((t.sigma(x) - e.sigma(x)).abs() < 0.004, "{x}");
        }
        assert_eq!(t.sigma(7.0), 1.0);
        assert_eq!(t.sigma(-7.0), 0.0);
        assert!((e.sigma(0.0) - 0.5).abs() < 1e-7);
    }
}
