//! Sampling a continuation from any `CausalLm`: softmax(logits / temperature) restricted to the
//! `top_k` most likely tokens, drawn with a seeded generator (temperature 0 = greedy argmax).

use candle_core::{Device, Tensor};
use jielong_core::{Error, Result, Rng};
use jielong_models::CausalLm;

#[derive(Debug, Clone)]
pub struct SampleOptions {
    pub max_tokens: usize,
    pub temperature: f64,
    /// 0 = no top-k restriction.
    pub top_k: usize,
    pub seed: u64,
    /// Stop when this id is produced (it is not emitted).
    pub stop_id: Option<u32>,
}

impl SampleOptions {
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::input(format!("--temperature {} must be 0 (greedy) or positive", self.temperature)));
        }
        Ok(())
    }
}

/// Choose the next id from one row of logits.
pub fn pick(logits: &[f32], opts: &SampleOptions, rng: &mut Rng) -> u32 {
    if opts.temperature == 0.0 {
        return logits.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &l)| if l > b.1 { (i, l) } else { b }).0 as u32;
    }
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    if opts.top_k > 0 && opts.top_k < logits.len() {
        idx.select_nth_unstable_by(opts.top_k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
        idx.truncate(opts.top_k);
    }
    let max = idx.iter().map(|&i| logits[i]).fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = idx.iter().map(|&i| (((logits[i] - max) as f64) / opts.temperature).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut r = rng.next_f64() * total;
    for (k, w) in weights.iter().enumerate() {
        r -= w;
        if r < 0.0 {
            return idx[k] as u32;
        }
    }
    idx[idx.len() - 1] as u32
}

/// Continue `prompt` by up to `max_tokens` ids; `on_token` sees each new id as it is chosen.
/// The window fed to the model is the last `max_seq_len` ids.
pub fn sample(
    model: &dyn CausalLm,
    prompt: &[u32],
    opts: &SampleOptions,
    dev: &Device,
    on_token: &mut dyn FnMut(u32),
) -> Result<Vec<u32>> {
    opts.validate()?;
    if prompt.is_empty() {
        return Err(Error::input("the prompt is empty: give at least one token of text"));
    }
    let mut rng = Rng::new(opts.seed);
    let mut ids = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..opts.max_tokens {
        let start = ids.len().saturating_sub(model.max_seq_len());
        let window = Tensor::new(&ids[start..], dev)?.unsqueeze(0)?;
        let logits = model.logits(&window)?; // (1, t, v)
        let last = logits.squeeze(0)?.get(ids.len() - start - 1)?; // (v)
        let row: Vec<f32> = last.to_dtype(candle_core::DType::F32)?.to_vec1()?;
        let next = pick(&row, opts, &mut rng);
        if Some(next) == opts.stop_id {
            break;
        }
        ids.push(next);
        out.push(next);
        on_token(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(temperature: f64, top_k: usize) -> SampleOptions {
        SampleOptions { max_tokens: 1, temperature, top_k, seed: 0, stop_id: None }
    }

    #[test]
    fn pick_greedy_and_top_k() {
        let logits = [0.0f32, 3.0, 1.0, 2.9];
        let mut rng = Rng::new(1);
        assert_eq!(pick(&logits, &opts(0.0, 0), &mut rng), 1);
        for _ in 0..200 {
            let id = pick(&logits, &opts(1.0, 2), &mut rng);
            assert!(id == 1 || id == 3, "top-2 drew {id}");
        }
    }

    #[test]
    fn pick_frequencies_follow_softmax() {
        // p = softmax([0, ln 2, ln 3]) = (1/6, 2/6, 3/6); chi-square, 2 dof, 0.001 critical 13.8.
        let logits = [0.0f32, 2f32.ln(), 3f32.ln()];
        let mut rng = Rng::new(42);
        let mut counts = [0f64; 3];
        let n = 60_000.0;
        for _ in 0..n as usize {
            counts[pick(&logits, &opts(1.0, 0), &mut rng) as usize] += 1.0;
        }
        let chi: f64 = counts.iter().zip([1.0, 2.0, 3.0]).map(|(c, w)| (c - n * w / 6.0).powi(2) / (n * w / 6.0)).sum();
        assert!(chi < 13.8, "chi-square {chi}, counts {counts:?}");
    }
}
