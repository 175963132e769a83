//! The stages. Each is small; the tests below check every one against a distribution worked
//! out by hand.

use super::{Candidates, Sampler};
use jielong_core::Rng;
use std::collections::HashMap;

/// Repetition (CTRL / HF: a seen token's logit is divided by `repetition` when positive,
/// multiplied when negative), presence (minus `presence` once a token has appeared) and
/// frequency (minus `frequency` × count) penalties over the last `last_n` tokens (0 = all).
pub struct Penalties {
    pub repetition: f32,
    pub presence: f32,
    pub frequency: f32,
    pub last_n: usize,
    history: std::collections::VecDeque<u32>,
    counts: HashMap<u32, u32>,
}

impl Penalties {
    pub fn new(repetition: f32, presence: f32, frequency: f32, last_n: usize) -> Self {
        Self { repetition, presence, frequency, last_n, history: Default::default(), counts: HashMap::new() }
    }
}

impl Sampler for Penalties {
    fn name(&self) -> String {
        format!("penalties(rep={}, presence={}, freq={})", self.repetition, self.presence, self.frequency)
    }
    fn apply(&mut self, c: &mut Candidates) {
        if self.counts.is_empty() || (self.repetition == 1.0 && self.presence == 0.0 && self.frequency == 0.0) {
            return;
        }
        for cand in &mut c.items {
            if let Some(&n) = self.counts.get(&cand.id) {
                if cand.logit > 0.0 {
                    cand.logit /= self.repetition;
                } else {
                    cand.logit *= self.repetition;
                }
                cand.logit -= self.presence + self.frequency * n as f32;
            }
        }
        c.sorted = false;
    }
    fn accept(&mut self, id: u32) {
        self.history.push_back(id);
        *self.counts.entry(id).or_default() += 1;
        if self.last_n > 0 && self.history.len() > self.last_n {
            let old = self.history.pop_front().expect("non-empty");
            let n = self.counts.get_mut(&old).expect("counted");
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&old);
            }
        }
    }
    fn reset(&mut self) {
        self.history.clear();
        self.counts.clear();
    }
}

/// Ban every token that would complete an n-gram already present (HF `no_repeat_ngram_size`).
pub struct NoRepeatNgram {
    pub n: usize,
    history: Vec<u32>,
}

impl NoRepeatNgram {
    pub fn new(n: usize) -> Self {
        Self { n, history: Vec::new() }
    }
    /// Tokens that followed the current (n−1)-token suffix somewhere earlier.
    pub fn banned(&self) -> Vec<u32> {
        let (n, h) = (self.n, &self.history);
        match n {
            0 => Vec::new(),
            1 => h.clone(),
            _ if h.len() < n - 1 => Vec::new(),
            _ => {
                let suffix = &h[h.len() + 1 - n..];
                h.windows(n).filter(|w| &w[..n - 1] == suffix).map(|w| w[n - 1]).collect()
            }
        }
    }
}

impl Sampler for NoRepeatNgram {
    fn name(&self) -> String {
        format!("no_repeat_ngram({})", self.n)
    }
    fn apply(&mut self, c: &mut Candidates) {
        let banned = self.banned();
        if banned.is_empty() {
            return;
        }
        for cand in &mut c.items {
            if banned.contains(&cand.id) {
                cand.logit = f32::NEG_INFINITY;
            }
        }
        c.sorted = false;
        // Drop them, unless that would leave nothing.
        if c.items.iter().any(|x| x.logit > f32::NEG_INFINITY) {
            c.items.retain(|x| x.logit > f32::NEG_INFINITY);
        }
    }
    fn accept(&mut self, id: u32) {
        self.history.push(id);
    }
    fn reset(&mut self) {
        self.history.clear();
    }
}

/// Keep the `k` most likely (0 = all).
pub struct TopK(pub usize);

impl Sampler for TopK {
    fn name(&self) -> String {
        format!("top_k({})", self.0)
    }
    fn apply(&mut self, c: &mut Candidates) {
        let k = self.0;
        if k == 0 || k >= c.items.len() {
            return;
        }
        if !c.sorted {
            // Partial selection first: sorting a 50k vocabulary every step is wasteful.
            c.items.select_nth_unstable_by(k - 1, |a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
            c.items.truncate(k);
            c.sort();
        } else {
            c.keep_first(k);
        }
    }
}

/// Nucleus: the smallest set of most likely tokens whose probability reaches `p`.
pub struct TopP(pub f32);

impl Sampler for TopP {
    fn name(&self) -> String {
        format!("top_p({})", self.0)
    }
    fn apply(&mut self, c: &mut Candidates) {
        if self.0 >= 1.0 {
            return;
        }
        c.softmax();
        let mut cum = 0f32;
        let mut keep = c.items.len();
        for (i, cand) in c.items.iter().enumerate() {
            cum += cand.p;
            if cum >= self.0 {
                keep = i + 1;
                break;
            }
        }
        c.keep_first(keep);
    }
}

/// Keep tokens at least `p` times as likely as the most likely one.
pub struct MinP(pub f32);

impl Sampler for MinP {
    fn name(&self) -> String {
        format!("min_p({})", self.0)
    }
    fn apply(&mut self, c: &mut Candidates) {
        if self.0 <= 0.0 || c.items.is_empty() {
            return;
        }
        // p_i ≥ p · p_max  ⇔  logit_i ≥ logit_max + ln p. Filter first, then sort the few kept:
        // sorting the whole vocabulary for every token was a tenth of a busy server's time.
        let max = c.items.iter().map(|x| x.logit).fold(f32::NEG_INFINITY, f32::max);
        let threshold = max + self.0.ln();
        if !c.sorted && c.items.iter().any(|x| x.logit >= threshold) {
            c.items.retain(|x| x.logit >= threshold);
            c.sort();
        } else {
            c.sort();
            let keep = c.items.iter().take_while(|x| x.logit >= threshold).count();
            c.keep_first(keep);
        }
    }
}

/// Locally typical sampling (Meister et al. 2022): keep the tokens whose surprisal is closest to
/// the entropy, in that order, until their probability reaches `p`.
pub struct Typical(pub f32);

impl Sampler for Typical {
    fn name(&self) -> String {
        format!("typical_p({})", self.0)
    }
    fn apply(&mut self, c: &mut Candidates) {
        if self.0 >= 1.0 {
            return;
        }
        c.softmax();
        let entropy: f32 = c.items.iter().filter(|x| x.p > 0.0).map(|x| -x.p * x.p.ln()).sum();
        let mut order: Vec<(f32, usize)> =
            c.items.iter().enumerate().map(|(i, x)| (((-x.p.ln()) - entropy).abs(), i)).collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut cum = 0f32;
        let mut keep = Vec::new();
        for &(_, i) in &order {
            cum += c.items[i].p;
            keep.push(c.items[i]);
            if cum >= self.0 {
                break;
            }
        }
        c.items = keep;
        c.sorted = false;
        c.sort();
    }
}

/// Divide logits by `t`; t = 0 keeps only the most likely token (greedy).
pub struct Temperature(pub f32);

impl Sampler for Temperature {
    fn name(&self) -> String {
        format!("temperature({})", self.0)
    }
    fn apply(&mut self, c: &mut Candidates) {
        if self.0 <= 0.0 {
            c.sort();
            c.keep_first(1);
            return;
        }
        for cand in &mut c.items {
            cand.logit /= self.0;
        }
    }
}

/// Select the most likely candidate.
pub struct Greedy;

impl Sampler for Greedy {
    fn name(&self) -> String {
        "greedy".into()
    }
    fn apply(&mut self, c: &mut Candidates) {
        c.softmax();
        c.selected = if c.items.is_empty() { None } else { Some(0) };
    }
}

/// Draw from softmax(logits) of the remaining candidates with a seeded generator.
pub struct Dist {
    seed: u64,
    rng: Rng,
}

impl Dist {
    pub fn new(seed: u64) -> Self {
        Self { seed, rng: Rng::new(seed) }
    }
}

impl Sampler for Dist {
    fn name(&self) -> String {
        format!("dist(seed={})", self.seed)
    }
    fn apply(&mut self, c: &mut Candidates) {
        if c.items.is_empty() {
            c.selected = None;
            return;
        }
        // Inverse CDF over the candidates from most to least likely. The walk usually stops
        // after a few dozen, so only that far is put in order: the top 64, then the next 256,
        // and so on (sorting the whole vocabulary for every token was a quarter of a busy
        // server's time). The pick is the one a full sort would give.
        c.probabilities();
        let mut r = self.rng.next_f64();
        let n = c.items.len();
        let (mut start, mut chunk) = (0, if c.sorted { n } else { 64 });
        loop {
            let end = (start + chunk).min(n);
            if !c.sorted {
                let rest = &mut c.items[start..];
                if end < n {
                    rest.select_nth_unstable_by(end - start - 1, Candidates::order);
                }
                c.items[start..end].sort_by(Candidates::order);
            }
            for i in start..end {
                r -= c.items[i].p as f64;
                if r < 0.0 {
                    c.selected = Some(i);
                    return;
                }
            }
            if end == n {
                c.selected = Some(n - 1);
                return;
            }
            start = end;
            chunk *= 4;
        }
    }
    fn reset(&mut self) {
        self.rng = Rng::new(self.seed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(ps: &[f32]) -> Candidates {
        Candidates::from_logits(&ps.iter().map(|p| p.ln()).collect::<Vec<_>>())
    }
    fn ids(c: &Candidates) -> Vec<u32> {
        c.items.iter().map(|x| x.id).collect()
    }

    #[test]
    fn top_k_keeps_the_k_largest_in_order() {
        let mut c = probs(&[0.1, 0.4, 0.05, 0.3, 0.15]);
        TopK(3).apply(&mut c);
        assert_eq!(ids(&c), vec![1, 3, 4]);
        let mut c = probs(&[0.5, 0.5]);
        TopK(0).apply(&mut c);
        assert_eq!(c.items.len(), 2);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // Sorted: 0.4 (id 1), 0.3 (3), 0.15 (4), 0.1 (0), 0.05 (2). Cumulative 0.4, 0.7, 0.85, 0.95, 1.
        for (p, want) in [(0.39, vec![1]), (0.41, vec![1, 3]), (0.69, vec![1, 3]), (0.71, vec![1, 3, 4]), (0.9, vec![1, 3, 4, 0]), (1.0, vec![1, 3, 4, 0, 2])] {
            let mut c = probs(&[0.1, 0.4, 0.05, 0.3, 0.15]);
            TopP(p).apply(&mut c);
            let mut got = ids(&c);
            if p == 1.0 {
                got.sort();
                assert_eq!(got, vec![0, 1, 2, 3, 4]);
            } else {
                assert_eq!(got, want, "top_p {p}");
            }
        }
    }

    #[test]
    fn min_p_keeps_tokens_at_least_p_times_the_best() {
        // best 0.4: min_p 0.5 → threshold 0.2 keeps 0.4 and 0.3; min_p 0.25 → 0.1 keeps 0.1 too.
        let mut c = probs(&[0.1, 0.4, 0.05, 0.3, 0.15]);
        MinP(0.5).apply(&mut c);
        assert_eq!(ids(&c), vec![1, 3]);
        let mut c = probs(&[0.1, 0.4, 0.05, 0.3, 0.15]);
        MinP(0.25).apply(&mut c);
        assert_eq!(ids(&c), vec![1, 3, 4, 0]);
    }

    #[test]
    fn typical_keeps_tokens_nearest_the_entropy() {
        // p = (0.5, 0.25, 0.125, 0.125): H = 1.75 bits = 1.2130 nats. Surprisals in nats:
        // 0.693, 1.386, 2.079, 2.079 → distances 0.520, 0.173, 0.866, 0.866.
        // Order: id 1 (0.25), id 0 (0.5), then 2, 3. typical 0.2 → {1}; 0.7 → {1, 0}; 0.8 → {1, 0, 2}.
        for (p, want) in [(0.2, vec![1]), (0.7, vec![0, 1]), (0.8, vec![0, 1, 2])] {
            let mut c = probs(&[0.5, 0.25, 0.125, 0.125]);
            Typical(p).apply(&mut c);
            assert_eq!(ids(&c), want, "typical {p}");
        }
    }

    #[test]
    fn temperature_reshapes_and_zero_is_greedy() {
        let mut c = probs(&[0.2, 0.8]);
        Temperature(0.5).apply(&mut c);
        c.softmax();
        // p ∝ p^(1/T) = (0.04, 0.64) → (1/17, 16/17).
        assert!((c.items[0].p - 16.0 / 17.0).abs() < 1e-6 && c.items[0].id == 1);
        let mut c = probs(&[0.2, 0.8, 0.1]);
        Temperature(0.0).apply(&mut c);
        assert_eq!(ids(&c), vec![1]);
    }

    #[test]
    fn penalties_follow_their_definitions() {
        let mut pen = Penalties::new(2.0, 0.5, 0.25, 0);
        for id in [0, 1, 1] {
            pen.accept(id);
        }
        let mut c = Candidates::from_logits(&[4.0, -4.0, 1.0]);
        pen.apply(&mut c);
        let l: Vec<f32> = c.items.iter().map(|x| x.logit).collect();
        // id 0: 4/2 − 0.5 − 0.25·1 = 1.25; id 1: −4·2 − 0.5 − 0.25·2 = −9; id 2 unseen.
        assert_eq!(l, vec![1.25, -9.0, 1.0]);
        // A window of the last 2 tokens forgets the first.
        let mut pen = Penalties::new(2.0, 0.0, 0.0, 2);
        for id in [0, 1, 1] {
            pen.accept(id);
        }
        let mut c = Candidates::from_logits(&[4.0, 4.0]);
        pen.apply(&mut c);
        assert_eq!(c.items[0].logit, 4.0);
        assert_eq!(c.items[1].logit, 2.0);
    }

    #[test]
    fn no_repeat_ngram_bans_completions_of_seen_ngrams() {
        let mut s = NoRepeatNgram::new(3);
        for id in [5, 6, 7, 1, 5, 6] {
            s.accept(id);
        }
        // Suffix (5, 6) was followed by 7 before: 7 is banned.
        assert_eq!(s.banned(), vec![7]);
        let mut c = Candidates::from_logits(&[0.0; 9]);
        s.apply(&mut c);
        assert!(!ids(&c).contains(&7) && c.items.len() == 8);
        let mut s = NoRepeatNgram::new(2);
        s.accept(3);
        assert!(s.banned().is_empty(), "a single token has no completed bigram yet");
        s.accept(4);
        s.accept(3);
        assert_eq!(s.banned(), vec![4]);
    }

    #[test]
    fn dist_frequencies_match_probabilities_chi_square() {
        // p = (0.1, 0.2, 0.3, 0.4); 3 degrees of freedom, critical value at 0.001: 16.27.
        let ps = [0.1f32, 0.2, 0.3, 0.4];
        let mut d = Dist::new(7);
        let n = 40_000usize;
        let mut counts = [0f64; 4];
        for _ in 0..n {
            let mut c = probs(&ps);
            d.apply(&mut c);
            counts[c.chosen().unwrap() as usize] += 1.0;
        }
        let chi: f64 = counts.iter().zip(ps).map(|(o, p)| (o - n as f64 * p as f64).powi(2) / (n as f64 * p as f64)).sum();
        assert!(chi < 16.27, "chi-square {chi}, counts {counts:?}");
        // The test can fail: a sampler that ignored the weights would give chi ≈ n/12 here.
    }

    #[test]
    fn greedy_selects_the_argmax() {
        let mut c = Candidates::from_logits(&[0.5, 2.0, -1.0, 1.9]);
        Greedy.apply(&mut c);
        assert_eq!(c.chosen(), Some(1));
    }

    #[test]
    fn dist_on_a_large_vocabulary_picks_what_a_full_sort_would() {
        // A flat-ish distribution over 5,000 ids (ties included), so walks go past the first
        // chunks: the partial ordering must give the pick of sorting everything first.
        let logits: Vec<f32> = (0..5000u32).map(|i| ((i.wrapping_mul(2_654_435_761) % 997) as f32) / 300.0).collect();
        for seed in 0..200 {
            let mut partial = Candidates::from_logits(&logits);
            Dist::new(seed).apply(&mut partial);
            let mut full = Candidates::from_logits(&logits);
            full.sort();
            let mut rng = Rng::new(seed);
            full.softmax();
            let mut r = rng.next_f64();
            let mut want = full.items.len() - 1;
            for (i, cand) in full.items.iter().enumerate() {
                r -= cand.p as f64;
                if r < 0.0 {
                    want = i;
                    break;
                }
            }
            let got = partial.chosen().unwrap();
            let expect = full.items[want].id;
            // Summing the probabilities in another order may move a boundary by one ulp: then
            // the pick is a neighbour in the sorted order, never anything else.
            if got != expect {
                let pos = full.items.iter().position(|c| c.id == got).unwrap();
                assert!(pos.abs_diff(want) <= 1, "seed {seed}: picked {got} (rank {pos}), a full sort gives {expect} (rank {want})");
            }
        }
    }

    #[test]
    fn min_p_keeps_what_it_kept_with_a_full_sort() {
        let logits: Vec<f32> = (0..3000u32).map(|i| ((i.wrapping_mul(40_503) % 1009) as f32) / 100.0).collect();
        let mut c = Candidates::from_logits(&logits);
        MinP(0.05).apply(&mut c);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut want: Vec<(u32, f32)> = logits.iter().enumerate().filter(|(_, &l)| l >= max + 0.05f32.ln()).map(|(i, &l)| (i as u32, l)).collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert!(c.sorted);
        assert_eq!(ids(&c), want.iter().map(|w| w.0).collect::<Vec<_>>());
        assert!(want.len() > 1 && want.len() < 3000);
    }
}
