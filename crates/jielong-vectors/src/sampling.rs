//! word2vec's two sampling tables and its random numbers.
//!
//! - Frequent-word subsampling: a word seen `c` times out of `T` is kept with probability
//!   `min(1, (sqrt(c / (s·T)) + 1) · (s·T) / c)` where `s` is `--sample` (word2vec.c's formula,
//!   which gensim uses too), stored as a 32-bit threshold so keeping it costs one comparison.
//! - Negative sampling: words drawn with probability proportional to `count^0.75`, through
//!   gensim's cumulative table (integers over the domain `2^31 − 1`) searched by bisection.
//! - The random numbers are word2vec.c's linear congruential generator: one multiply and add
//!   per draw, one per thread, seeded from the run's seed.

/// word2vec.c's generator: `x ← x · 25214903917 + 11 (mod 2^64)`.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(25_214_903_917).wrapping_add(11);
        self.0
    }

    /// A 32-bit draw (the high bits, which are the good ones of an LCG).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 16) as u32
    }

    /// Uniform in [0, n) (bias below n / 2^32).
    #[inline]
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.next_u32() as u64 * n as u64) >> 32) as u32
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn unit(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

/// Keep-probability of a word seen `count` times among `total` words, with threshold `sample`
/// (0 turns subsampling off). A `sample` of 1 or more is an absolute count, as in gensim.
pub fn keep_probability(count: u64, total: u64, sample: f64) -> f64 {
    if sample <= 0.0 || count == 0 {
        return 1.0;
    }
    let threshold = if sample < 1.0 { sample * total as f64 } else { sample };
    let c = count as f64;
    (((c / threshold).sqrt() + 1.0) * (threshold / c)).min(1.0)
}

/// Keep thresholds for every word: keep when `threshold >= a uniform 32-bit draw`
/// (`round(p · 2^32)`, as gensim stores `sample_int`).
pub fn keep_thresholds(counts: &[u64], sample: f64) -> Vec<u64> {
    let total: u64 = counts.iter().sum();
    counts.iter().map(|&c| (keep_probability(c, total, sample) * 4_294_967_296.0).round() as u64).collect()
}

/// The table negatives are drawn from: `cum[i] = round(Σ_{j≤i} c_j^p / Σ_j c_j^p · (2^31 − 1))`.
///
/// gensim draws from it by bisection; that costs about log2(V) unpredictable branches per
/// negative, a large share of the inner loop. Here the same distribution (each word's share
/// `(cum[i] − cum[i−1]) / cum[V−1]`) is drawn in constant time by Walker's alias method: pick a
/// column uniformly, keep it with its stored probability, else take its alias.
#[derive(Debug, Clone)]
pub struct NegativeTable {
    pub cum: Vec<u32>,
    prob: Vec<u32>,
    alias: Vec<u32>,
}

impl NegativeTable {
    pub const DOMAIN: f64 = 2_147_483_647.0;

    pub fn new(counts: &[u64], power: f64) -> Self {
        let total: f64 = counts.iter().map(|&c| (c as f64).powf(power)).sum();
        let mut acc = 0.0;
        let cum = counts
            .iter()
            .map(|&c| {
                acc += (c as f64).powf(power);
                (acc / total * Self::DOMAIN).round() as u32
            })
            .collect::<Vec<u32>>();
        let (prob, alias) = alias_tables(&cum);
        Self { cum, prob, alias }
    }

    /// The word whose cumulative interval holds a uniform draw (bisection, as gensim's
    /// `bisect_left(cum_table, r)`): the reference the alias draw is tested against.
    pub fn sample_bisect(&self, rng: &mut Lcg) -> u32 {
        let last = *self.cum.last().unwrap();
        let r = rng.below(last);
        self.cum.partition_point(|&x| x <= r) as u32
    }

    /// One draw in constant time (alias method, same distribution).
    #[inline]
    pub fn sample(&self, rng: &mut Lcg) -> u32 {
        let x = rng.next_u64();
        let col = ((((x >> 16) & 0xFFFF_FFFF) * self.prob.len() as u64) >> 32) as usize;
        // The low bits of an LCG are weak: both draws use high bits.
        let u = (rng.next_u64() >> 24) as u32;
        if u < self.prob[col] {
            col as u32
        } else {
            self.alias[col]
        }
    }
}

/// Walker/Vose alias tables for the shares `cum[i] − cum[i − 1]`; probabilities as fractions of
/// 2^32 (u32, with `u32::MAX` meaning "always keep").
fn alias_tables(cum: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let n = cum.len();
    let total = *cum.last().unwrap_or(&0) as f64;
    let mut scaled: Vec<f64> = (0..n).map(|i| (cum[i] - if i == 0 { 0 } else { cum[i - 1] }) as f64 / total * n as f64).collect();
    let mut alias: Vec<u32> = (0..n as u32).collect();
    let mut prob = vec![u32::MAX; n];
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
    while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
        prob[s] = (scaled[s] * 4_294_967_296.0).min(u32::MAX as f64) as u32;
        alias[s] = l as u32;
        scaled[l] -= 1.0 - scaled[s];
        if scaled[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    (prob, alias)
}

impl NegativeTable {
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keep_probability_matches_hand_computed() {
        // total 1000 words, sample 1e-3 → threshold 1 word. A word seen 100 times:
        // (sqrt(100/1) + 1) · 1/100 = 11/100.
        assert!((keep_probability(100, 1000, 1e-3) - 0.11).abs() < 1e-12);
        // Seen 4 times: (2 + 1)/4 = 0.75.
        assert!((keep_probability(4, 1000, 1e-3) - 0.75).abs() < 1e-12);
        // Rare words are always kept; sample 0 keeps everything.
        assert_eq!(keep_probability(1, 1000, 1e-3), 1.0);
        assert_eq!(keep_probability(900, 1000, 0.0), 1.0);
        // An absolute threshold (gensim: sample >= 1 is a count): 25 times with threshold 4:
        // (sqrt(25/4) + 1) · 4/25 = 3.5 · 0.16 = 0.56.
        assert!((keep_probability(25, 1000, 4.0) - 0.56).abs() < 1e-12);
        let t = keep_thresholds(&[100, 899, 1], 1e-3);
        assert_eq!(t[2], 4_294_967_296);
        assert_eq!(t[0], (0.11f64 * 4_294_967_296.0).round() as u64);
    }

    #[test]
    fn sampling_negative_table_is_unigram_to_the_three_quarters() {
        // counts 16 and 1: 16^0.75 = 8, 1^0.75 = 1 → cum = [8/9, 1] · (2^31 − 1).
        let t = NegativeTable::new(&[16, 1], 0.75);
        assert_eq!(t.cum, [(8.0 / 9.0 * NegativeTable::DOMAIN).round() as u32, 2_147_483_647]);
        // Draw frequencies follow 8:1, by bisection and by the alias method.
        for alias in [false, true] {
            let mut rng = Lcg(7);
            let mut n = [0u32; 2];
            for _ in 0..90_000 {
                n[if alias { t.sample(&mut rng) } else { t.sample_bisect(&mut rng) } as usize] += 1;
            }
            assert!((n[1] as f64 - 10_000.0).abs() < 400.0, "alias {alias}: {n:?}");
        }
        // Power 1 is the plain unigram distribution; power 0 uniform.
        assert_eq!(NegativeTable::new(&[3, 1], 1.0).cum[0], (0.75 * NegativeTable::DOMAIN).round() as u32);
        assert_eq!(NegativeTable::new(&[3, 1], 0.0).cum[0], (0.5 * NegativeTable::DOMAIN).round() as u32);
    }

    /// The alias draw has the cumulative table's distribution: chi-square over a Zipf vocabulary.
    #[test]
    fn sampling_alias_matches_the_cumulative_table() {
        let counts: Vec<u64> = (1..=200u64).map(|r| 100_000 / r).collect();
        let t = NegativeTable::new(&counts, 0.75);
        let total = *t.cum.last().unwrap() as f64;
        let draws = 2_000_000;
        let mut n = vec![0u64; counts.len()];
        let mut rng = Lcg(99);
        for _ in 0..draws {
            n[t.sample(&mut rng) as usize] += 1;
        }
        let chi: f64 = (0..counts.len())
            .map(|i| {
                let p = (t.cum[i] - if i == 0 { 0 } else { t.cum[i - 1] }) as f64 / total;
                let e = p * draws as f64;
                (n[i] as f64 - e).powi(2) / e
            })
            .sum();
        // 199 degrees of freedom: the 0.001 critical value is about 267.
        assert!(chi < 267.0, "chi-square {chi}");
    }

    #[test]
    fn sampling_lcg_is_word2vec_c() {
        let mut r = Lcg(1);
        assert_eq!(r.next_u64(), 25_214_903_928);
        assert_eq!(r.next_u64(), 25_214_903_928u64.wrapping_mul(25_214_903_917).wrapping_add(11));
    }
}
