//! `jielong eval --checkpoint DIR [--adapter DIR] --chat FILE.jsonl`: the loss on the assistant's
//! tokens only, so a model before and after `jielong sft` can be compared on held-out
//! conversations. Each conversation is rendered with the chat template (the checkpoint's own, as
//! chat and serve use it, or `--template`) and scored exactly as `jielong sft` scores its data:
//! cross-entropy over the assistant's tokens and their end-of-turn token, the prompt and the
//! other turns read but not scored, averaged over all scored tokens.

use super::generate::ModelArgs;
use anyhow::Result;
use jielong_core::Error;
use jielong_data::sft::{read_chat_jsonl, LossOn, SftData};
use jielong_tokenizer::ChatTemplate;
use std::path::Path;

/// What `--chat` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatEval {
    pub n_examples: usize,
    pub n_tokens: usize,
    pub assistant_loss: f64,
}

pub fn run(model_args: &ModelArgs, data: &Path, template: Option<&str>, strict: bool, batch_size: usize, json: bool) -> Result<()> {
    let (r, origin) = score(model_args, data, template, strict, batch_size)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "n_conversations": r.n_examples, "n_tokens": r.n_tokens, "template": origin,
                "assistant_loss": r.assistant_loss, "perplexity": r.assistant_loss.exp(),
            })
        );
    } else {
        println!("{} conversations · {} assistant tokens scored (template {})", r.n_examples, r.n_tokens, origin);
        println!("  assistant loss  {:.4} nats/token", r.assistant_loss);
        println!("  perplexity      {:.2}", r.assistant_loss.exp());
    }
    Ok(())
}

/// The assistant-token loss of the model `model_args` loads on the conversations in `data`
/// (what `--chat` reports; `jielong compare --regimes` scores every regime with it), and the
/// template it rendered them with.
pub fn score(model_args: &ModelArgs, data: &Path, template: Option<&str>, strict: bool, batch_size: usize) -> Result<(ChatEval, String)> {
    let loaded = model_args.load()?;
    let tk = &loaded.tk;
    let template = match template {
        Some(spec) => jielong_train::sft::template_by_name_or_file(spec)?,
        None => ChatTemplate::for_tokenizer_dir(&loaded.tokenizer_dir)?,
    };
    let missing: Vec<String> = template.special_tokens().into_iter().filter(|t| tk.inner().token_to_id(t).is_none()).collect();
    if !missing.is_empty() {
        return Err(Error::input(format!(
            "template {} writes tokens this checkpoint's tokenizer lacks ({}): evaluate a model fine-tuned with it, or pick --template builtin",
            template.origin,
            missing.join(" ")
        ))
        .into());
    }
    let report = read_chat_jsonl(data, strict)?;
    if let Some(s) = report.bad_summary() {
        eprintln!("{}: {s}", data.display());
    }
    let lm = loaded.lm();
    let sft = SftData::encode(&report.examples, &template, tk, LossOn::Assistant, lm.max_seq_len() + 1, strict, &data.display().to_string())?;
    if !sft.bad.is_empty() {
        eprintln!("{}: {} conversation(s) not scored (line {}: {})", data.display(), sft.bad.len(), sft.bad[0].0, sft.bad[0].1);
    }
    if sft.truncated > 0 {
        eprintln!("{}: {} conversation(s) cut to the context of {} tokens", data.display(), sft.truncated, lm.max_seq_len());
    }
    let pad = tk.eot_id().unwrap_or(0);
    let r = ChatEval {
        n_examples: sft.examples.len(),
        n_tokens: sft.loss_tokens(),
        assistant_loss: jielong_train::sft::assistant_loss(&*loaded.model, &sft, batch_size, pad)?,
    };
    Ok((r, template.origin))
}
