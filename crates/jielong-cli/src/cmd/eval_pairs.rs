//! `jielong eval --checkpoint DIR --pairs FILE.jsonl [--beams N]`: a seq2seq model on JSON lines
//! `{"source": …, "target": …}`: every source decoded (greedy, or beam search), and the outputs
//! scored against the targets: exact match, token accuracy, corpus BLEU (as sacrebleu computes
//! it; `zh` tokenization when the targets are Chinese), the teacher-forced cross-entropy, and
//! exact match by source length (where a model without attention breaks down).

use anyhow::Result;
use candle_core::Device;
use jielong_core::Error;
use jielong_generate::seq2seq::{evaluate_pairs, Seq2seqDecode};
use jielong_train::seq2seq::{eval_loss, read_pairs, PairIds};
use jielong_train::Checkpoint;
use std::path::Path;

/// Decode and score `pairs` with the seq2seq checkpoint at `checkpoint`.
pub fn run(checkpoint: &Path, pairs: &Path, beams: usize, limit: Option<usize>, show: usize, json: bool) -> Result<()> {
    if beams == 0 {
        return Err(Error::input("--beams 0: use 1 for greedy decoding or more for beam search").into());
    }
    let ckpt = Checkpoint::open(checkpoint)?;
    let model = ckpt.load_model(&Device::Cpu)?;
    let Some(s2s) = model.as_seq2seq() else {
        return Err(Error::input(format!(
            "--pairs scores an encoder-decoder; {} holds a {} model: evaluate it on text with --text FILE",
            ckpt.dir.display(),
            ckpt.meta.family
        ))
        .into());
    };
    let tk = ckpt.load_tokenizer(None)?;
    let eos = tk.eot_id().ok_or_else(|| Error::input("the run's tokenizer has no <|endoftext|> token"))?;
    let mut all = read_pairs(pairs)?;
    if let Some(n) = limit {
        all.truncate(n.max(1));
    }
    let max_len = ckpt.meta.model.max_seq_len();
    let ids = PairIds::encode(&tk, &all, max_len, pairs)?;
    let loss = eval_loss(s2s, &ids, eos, 32, usize::MAX)?;
    let sources: Vec<String> = all.iter().map(|p| p.source.clone()).collect();
    let targets: Vec<String> = all.iter().map(|p| p.target.clone()).collect();
    let opts = Seq2seqDecode { bos: eos, eos, max_tokens: max_len, beams };
    let (scores, hyps) = evaluate_pairs(s2s, &tk, &sources, &targets, &opts)?;
    if json {
        let mut v = serde_json::to_value(&scores)?;
        v["cross_entropy"] = loss.into();
        v["decoding"] = if beams > 1 { format!("beam {beams}") } else { "greedy".to_string() }.into();
        println!("{v}");
        return Ok(());
    }
    let how = if beams > 1 { format!("beam search, {beams} beams") } else { "greedy".into() };
    println!("{} pairs from {} · {} · {how}", scores.n, pairs.display(), ckpt.meta.model.describe());
    println!("  exact match     {:.2} %", 100.0 * scores.exact_match);
    println!("  token accuracy  {:.2} %", 100.0 * scores.token_accuracy);
    let p = scores.bleu_precisions;
    println!(
        "  BLEU            {:.2}  ({:.1}/{:.1}/{:.1}/{:.1}, BP {:.3}, tokenize {})",
        scores.bleu, p[0], p[1], p[2], p[3], scores.brevity_penalty, scores.bleu_tokenize
    );
    println!("  cross-entropy   {loss:.4} nats/token (teacher forcing)");
    println!("  exact match by source length (tokens):");
    for (len, n, em) in &scores.by_source_length {
        println!("    {len:>4}  {:>6.1} %  ({n} pairs)", 100.0 * em);
    }
    for ((s, t), h) in sources.iter().zip(&targets).zip(&hyps).take(show) {
        println!("  {} {s}  →  {h}{}", if h == t { "✓" } else { "✗" }, if h == t { String::new() } else { format!("   (want {t})") });
    }
    Ok(())
}
