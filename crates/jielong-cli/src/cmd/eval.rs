//! `jielong eval --checkpoint DIR --text FILE…`: cross-entropy, perplexity and bits per byte of
//! a model on text. Bits per byte divides the total information by the UTF-8 bytes of the text,
//! so models with different tokenizers can be compared; cross-entropy and perplexity are per
//! token of this model's tokenizer.
//!
//! The text is read and cleaned as `jielong data prepare` does, documents joined by the
//! end-of-text token. Windows of the model's context slide by `--stride` tokens; each token is
//! scored once, in the first window whose end reaches it, so with a stride below the context
//! every token after the first window is predicted with at least `context − stride` tokens
//! of history.

use super::generate::ModelArgs;
use anyhow::Result;
use candle_core::{Device, Tensor, D};
use jielong_core::Error;
use jielong_models::CausalLm;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Text files, folders or .jsonl files to evaluate on.
    #[arg(long, num_args = 1.., required_unless_present_any = ["pairs", "chat", "data"])]
    pub text: Vec<PathBuf>,
    /// JSON lines of conversations (OpenAI `messages`, `prompt`/`completion` or Alpaca):
    /// the loss on the assistant's tokens only, rendered with the checkpoint's chat template,
    /// to compare a model before and after `jielong sft`.
    #[arg(long, conflicts_with_all = ["text", "pairs", "stride"])]
    pub chat: Option<PathBuf>,
    /// With --chat: the template (chatml, llama3, builtin or a file) instead of the
    /// checkpoint's own.
    #[arg(long, requires = "chat")]
    pub template: Option<String>,
    /// With --chat: a bad line is an error instead of being counted and skipped.
    #[arg(long, requires = "chat")]
    pub strict: bool,
    /// A seq2seq checkpoint: JSON lines {"source", "target"} to decode and score (exact
    /// match, token accuracy, BLEU).
    #[arg(long, conflicts_with_all = ["text", "stride"])]
    pub pairs: Option<PathBuf>,
    /// With --pairs: 1 = greedy decoding, more = beam search with this many beams.
    #[arg(long, default_value_t = 1, requires = "pairs")]
    pub beams: usize,
    /// With --pairs: score only the first N pairs.
    #[arg(long, requires = "pairs")]
    pub limit: Option<usize>,
    /// With --pairs: print the first N sources with their outputs.
    #[arg(long, default_value_t = 0, requires = "pairs")]
    pub show: usize,
    /// A classifier (`jielong finetune --task classify`): JSON lines {"text", "label"} to
    /// score (accuracy, macro-F1, beside the majority-class baseline).
    #[arg(long, conflicts_with_all = ["text", "pairs", "chat", "stride"])]
    pub data: Option<PathBuf>,
    /// Tokens the window moves each time (default: the model's context, no overlap).
    #[arg(long)]
    pub stride: Option<usize>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// One JSON line instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalReport {
    pub n_tokens: usize,
    pub n_bytes: usize,
    pub total_nats: f64,
}

impl EvalReport {
    pub fn cross_entropy(&self) -> f64 {
        self.total_nats / self.n_tokens as f64
    }
    pub fn perplexity(&self) -> f64 {
        self.cross_entropy().exp()
    }
    pub fn bits_per_byte(&self) -> f64 {
        self.total_nats / std::f64::consts::LN_2 / self.n_bytes as f64
    }
}

/// Windows (start, end) over `n` tokens: inputs ids[start..end], and the targets each scores.
pub fn windows(n: usize, ctx: usize, stride: usize) -> Vec<(usize, usize, usize)> {
    // (start, end, first scored target index)
    let mut out = Vec::new();
    let mut scored_to = 1; // target index 0 (the first token) has no context
    let mut start = 0;
    while scored_to < n {
        let end = (start + ctx).min(n - 1); // inputs ids[start..end], targets ids[start+1..=end]
        if end + 1 > scored_to {
            out.push((start, end, scored_to.max(start + 1)));
            scored_to = end + 1;
        }
        if end == n - 1 {
            break;
        }
        start += stride;
    }
    out
}

/// Sum of −log p over every target once, in windows of the model's context.
pub fn score(model: &dyn CausalLm, ids: &[u32], stride: usize, batch_size: usize, on_progress: &mut dyn FnMut(usize)) -> Result<(f64, usize)> {
    let ctx = model.max_seq_len();
    let dev = Device::Cpu;
    let mut total = 0f64;
    let mut count = 0usize;
    let wins = windows(ids.len(), ctx, stride);
    for group in wins.chunk_by(|a, b| a.1 - a.0 == b.1 - b.0).flat_map(|g| g.chunks(batch_size.max(1))) {
        let t = group[0].1 - group[0].0;
        let inputs: Vec<u32> = group.iter().flat_map(|w| ids[w.0..w.1].iter().copied()).collect();
        let targets: Vec<u32> = group.iter().flat_map(|w| ids[w.0 + 1..=w.1].iter().copied()).collect();
        let logits = model.logits(&Tensor::from_vec(inputs, (group.len(), t), &dev)?)?; // (b, t, v)
        let v = logits.dim(D::Minus1)?;
        let logp = candle_nn::ops::log_softmax(&logits.reshape((group.len() * t, v))?, D::Minus1)?;
        let picked: Vec<f32> = logp.gather(&Tensor::from_vec(targets, (group.len() * t, 1), &dev)?, 1)?.flatten_all()?.to_vec1()?;
        for (k, w) in group.iter().enumerate() {
            // Row j of window k predicts target w.0 + 1 + j.
            for j in (w.2 - w.0 - 1)..t {
                total -= picked[k * t + j] as f64;
                count += 1;
            }
        }
        on_progress(group.len());
    }
    Ok((total, count))
}

pub fn run(a: Args) -> Result<()> {
    if let Some(chat) = &a.chat {
        return super::eval_chat::run(&a.model, chat, a.template.as_deref(), a.strict, a.batch_size, a.json);
    }
    if let Some(data) = &a.data {
        return super::predict::run_eval(&a.model.checkpoint, data, a.batch_size, a.json);
    }
    if let Some(pairs) = &a.pairs {
        return super::eval_pairs::run(&a.model.checkpoint, pairs, a.beams, a.limit, a.show, a.json);
    }
    let loaded = a.model.load()?;
    let (model, tk) = (loaded.lm(), &loaded.tk);
    let ctx = model.max_seq_len();
    let stride = a.stride.unwrap_or(ctx);
    if stride == 0 || stride > ctx {
        return Err(Error::input(format!("--stride {stride} must be between 1 and the model's context, {ctx}")).into());
    }
    let (docs, _report) = jielong_text::read_corpus(&a.text)?;
    let mut ids = Vec::new();
    let mut n_bytes = 0;
    for doc in &docs {
        let (text, _) = jielong_text::clean(&doc.text);
        if text.trim().is_empty() {
            continue;
        }
        n_bytes += text.len();
        ids.extend(tk.encode(&text)?);
        ids.extend(tk.eot_id());
    }
    if ids.len() < 2 || n_bytes == 0 {
        return Err(Error::input("no text to evaluate: the files are empty").into());
    }
    let n_windows = windows(ids.len(), ctx, stride).len();
    let bar = indicatif::ProgressBar::new(n_windows as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("eval [{bar:30}] {pos}/{len} windows · {elapsed}, ETA {eta}").expect("valid").progress_chars("=> "));
    let (total_nats, n_tokens) = score(model, &ids, stride, a.batch_size, &mut |k| bar.inc(k as u64))?;
    bar.finish_and_clear();
    let r = EvalReport { n_tokens, n_bytes, total_nats };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "n_documents": docs.len(), "n_bytes": r.n_bytes, "n_tokens": r.n_tokens, "context": ctx, "stride": stride,
                "cross_entropy": r.cross_entropy(), "perplexity": r.perplexity(), "bits_per_byte": r.bits_per_byte(),
            })
        );
    } else {
        println!("{} documents · {} bytes · {} tokens scored (context {ctx}, stride {stride})", docs.len(), r.n_bytes, r.n_tokens);
        println!("  cross-entropy  {:.4} nats/token", r.cross_entropy());
        println!("  perplexity     {:.2}", r.perplexity());
        println!("  bits per byte  {:.4}", r.bits_per_byte());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_windows_score_every_target_once() {
        for (n, ctx, stride) in [(10, 4, 4), (10, 4, 2), (11, 4, 1), (3, 8, 8), (9, 4, 3)] {
            let mut seen = vec![0; n];
            for (s, e, first) in windows(n, ctx, stride) {
                assert!(e - s <= ctx && first > s);
                seen[first..=e].iter_mut().for_each(|c| *c += 1);
            }
            assert_eq!(seen[0], 0);
            assert!(seen[1..].iter().all(|&c| c == 1), "{n} {ctx} {stride}: {seen:?}");
        }
    }
}
