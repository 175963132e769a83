//! `jielong fill-mask --checkpoint DIR "巴黎是法国的[MASK]都"`: what a masked language model
//! (a BERT checkpoint with its MLM head) puts in each `[MASK]`, the top candidates with their
//! probabilities. All masks are predicted at once, each from the unmasked context (as BERT was
//! trained), not one after another.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use jielong_core::Error;
use jielong_train::Checkpoint;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A run folder (its latest checkpoint) or a ckpt-NNNNNN folder of a model with an MLM head.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Use this tokenizer instead of the run's own (it must be the same one).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// The text, with `[MASK]` where a token is missing.
    pub prompt: String,
    /// Candidates to show per mask.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// One JSON line per mask instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.top_k == 0 {
        return Err(Error::input("--top-k must be at least 1").into());
    }
    let ckpt = Checkpoint::open(&a.checkpoint)?;
    let tk = ckpt.load_tokenizer(a.tokenizer.as_deref())?;
    let (mask_token, mask_id) = ["[MASK]", "<mask>"]
        .iter()
        .find_map(|m| tk.inner().token_to_id(m).map(|id| (*m, id)))
        .ok_or_else(|| Error::input("the tokenizer has no [MASK] token; train a WordPiece tokenizer with `jielong tokenizer train --kind wordpiece`"))?;
    if !a.prompt.contains(mask_token) {
        return Err(Error::input(format!("the prompt has no {mask_token}: write {mask_token} where the missing token goes, e.g. \"Paris is the {mask_token} of France\"")).into());
    }
    let model = ckpt.load_model(&Device::Cpu)?;
    let family = model.config().family();
    let mlm = model.as_encoder().and_then(|e| e.as_masked_lm()).ok_or_else(|| {
        Error::input(format!("{}: a {family} model without a masked-LM head cannot fill masks; use a BERT checkpoint trained with objective = \"mlm\"", a.checkpoint.display()))
    })?;
    let mut plain = tk.inner().clone();
    plain.with_padding(None);
    plain.with_truncation(None).map_err(|e| Error::Other(e.to_string()))?;
    let enc = plain.encode_fast(a.prompt.as_str(), true).map_err(|e| Error::input(format!("tokenizing the prompt: {e}")))?;
    let ids = enc.get_ids().to_vec();
    let max = model.config().max_seq_len();
    if ids.len() > max {
        return Err(Error::input(format!("the prompt is {} tokens; the model reads at most {max}", ids.len())).into());
    }
    let t = ids.len();
    let input = Tensor::from_vec(ids.clone(), (1, t), &Device::Cpu)?;
    let mask = Tensor::ones((1, t), DType::U32, &Device::Cpu)?;
    let logits = mlm.mlm_logits(&input, None, &mask)?.squeeze(0)?; // (t, vocab)
    let n_real = tk.vocab_size().min(mlm.vocab_size());
    for (pos, _) in ids.iter().enumerate().filter(|(_, &id)| id == mask_id) {
        let row: Vec<f32> = logits.get(pos)?.to_vec1()?;
        let row = &row[..n_real];
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = row.iter().map(|&x| ((x - m) as f64).exp()).sum();
        let mut best: Vec<(usize, f64)> = row.iter().enumerate().map(|(i, &x)| (i, ((x - m) as f64).exp() / z)).collect();
        best.sort_by(|x, y| y.1.total_cmp(&x.1));
        best.truncate(a.top_k);
        let shown: Vec<(String, f64)> = best.iter().map(|&(id, p)| (tk.id_to_piece(id as u32).unwrap_or_default(), p)).collect();
        if a.json {
            let c: Vec<_> = shown.iter().map(|(tok, p)| serde_json::json!({"token": tok, "p": p})).collect();
            println!("{}", serde_json::json!({"position": pos, "candidates": c}));
            continue;
        }
        println!("{mask_token} at token {pos}:");
        for (tok, p) in &shown {
            let filled = a.prompt.replacen(mask_token, tok.trim_start_matches("##"), 1);
            println!("  {:>6.2}%  {tok:<12} {filled}", p * 100.0);
        }
    }
    Ok(())
}
