//! Sampling settings as a user gives them (flags, API requests), validated once, and turned
//! into a chain. Defaults are llama.cpp's, which many users know.

use super::{Chain, Dist, Greedy, MinP, NoRepeatNgram, Penalties, Temperature, TopK, TopP, Typical};
use jielong_core::{Error, Result};

/// The stage order of a sampling chain by default (llama.cpp's order: temperature last).
pub const DEFAULT_ORDER: &[&str] = &["penalties", "no_repeat_ngram", "top_k", "typical_p", "top_p", "min_p", "temperature"];

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// false: the most likely token each step (greedy); true: draw from the distribution.
    pub sample: bool,
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub typical_p: f32,
    pub repetition_penalty: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// Tokens the penalties look back over (0 = all, the prompt included).
    pub penalty_last_n: usize,
    pub no_repeat_ngram: usize,
    pub seed: u64,
    /// Stage names, in order (see `DEFAULT_ORDER`).
    pub order: Vec<String>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            sample: true,
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 0,
            no_repeat_ngram: 0,
            seed: 0,
            order: DEFAULT_ORDER.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl SamplingConfig {
    pub fn greedy() -> Self {
        Self { sample: false, ..Self::default() }
    }

    /// Every value a user can get wrong, with the flag to change.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::input(m));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!("--temperature {} must be 0 (greedy) or positive", self.temperature));
        }
        for (flag, v) in [("--top-p", self.top_p), ("--typical-p", self.typical_p)] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(format!("{flag} {v} must be in (0, 1]: 1 turns it off"));
            }
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("--min-p {} must be in [0, 1]: 0 turns it off", self.min_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!("--repetition-penalty {} must be positive: 1 turns it off", self.repetition_penalty));
        }
        for (flag, v) in [("--presence-penalty", self.presence_penalty), ("--frequency-penalty", self.frequency_penalty)] {
            if !v.is_finite() {
                return bad(format!("{flag} must be a finite number"));
            }
        }
        for name in &self.order {
            if !DEFAULT_ORDER.contains(&name.as_str()) {
                return bad(format!("unknown sampler `{name}` in --samplers: use some of {}", DEFAULT_ORDER.join(",")));
            }
        }
        Ok(())
    }

    /// The chain for one sequence; `context` (the prompt) primes the penalties' history.
    pub fn build(&self, context: &[u32], explain_top: usize) -> Result<Chain> {
        self.validate()?;
        let mut chain = Chain::new().explain(explain_top);
        let penalties = self.repetition_penalty != 1.0 || self.presence_penalty != 0.0 || self.frequency_penalty != 0.0;
        for name in &self.order {
            chain = match name.as_str() {
                "penalties" if penalties => chain.push(Penalties::new(
                    self.repetition_penalty,
                    self.presence_penalty,
                    self.frequency_penalty,
                    self.penalty_last_n,
                )),
                "no_repeat_ngram" if self.no_repeat_ngram > 0 => chain.push(NoRepeatNgram::new(self.no_repeat_ngram)),
                "top_k" if self.sample && self.top_k > 0 => chain.push(TopK(self.top_k)),
                "typical_p" if self.sample && self.typical_p < 1.0 => chain.push(Typical(self.typical_p)),
                "top_p" if self.sample && self.top_p < 1.0 => chain.push(TopP(self.top_p)),
                "min_p" if self.sample && self.min_p > 0.0 => chain.push(MinP(self.min_p)),
                "temperature" if self.sample => chain.push(Temperature(self.temperature)),
                _ => chain,
            };
        }
        chain = if self.sample && self.temperature > 0.0 { chain.push(Dist::new(self.seed)) } else { chain.push(Greedy) };
        for &id in context {
            use super::Sampler;
            chain.accept(id);
        }
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_config_rejects_bad_values_naming_the_flag() {
        let cases = [
            (SamplingConfig { temperature: -0.1, ..Default::default() }, "--temperature"),
            (SamplingConfig { top_p: 0.0, ..Default::default() }, "--top-p"),
            (SamplingConfig { top_p: 1.5, ..Default::default() }, "--top-p"),
            (SamplingConfig { typical_p: 0.0, ..Default::default() }, "--typical-p"),
            (SamplingConfig { min_p: 2.0, ..Default::default() }, "--min-p"),
            (SamplingConfig { repetition_penalty: 0.0, ..Default::default() }, "--repetition-penalty"),
            (SamplingConfig { order: vec!["top_q".into()], ..Default::default() }, "top_q"),
        ];
        for (cfg, flag) in cases {
            let e = cfg.validate().unwrap_err();
            assert!(e.is_user_error() && e.to_string().contains(flag), "{e}");
        }
        let names = SamplingConfig::default().build(&[], 0).unwrap().stage_names();
        assert_eq!(names, vec!["top_k(40)", "top_p(0.95)", "min_p(0.05)", "temperature(0.8)", "dist(seed=0)"]);
        assert_eq!(SamplingConfig::greedy().build(&[], 0).unwrap().stage_names(), vec!["greedy"]);
    }
}
