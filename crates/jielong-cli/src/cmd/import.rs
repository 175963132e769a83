//! `jielong import --from HF_DIR --out RUN_DIR [--tokenizer FILE]`: a Hugging Face folder of a
//! supported architecture (GPT-2, Llama, Qwen2, BERT) as a jielong run folder.

use anyhow::Result;
use clap::Args as ClapArgs;
use std::path::PathBuf;

#[derive(ClapArgs)]
pub struct Args {
    /// A local Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub from: PathBuf,
    /// The run folder to write (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// The tokenizer.json to keep with the model, when the folder has none.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let (cfg, out) = jielong_train::interchange::import_hf(&a.from, a.tokenizer.as_deref(), &a.out)?;
    println!("imported {} → {} ({}, {:.2} M parameters)", a.from.display(), out.display(), cfg.describe(), cfg.n_params() as f64 / 1e6);
    if matches!(cfg.family(), "bert" | "albert") {
        println!("next: jielong embed --checkpoint {0} TEXTS.txt --out vectors.npy   (also: similarity, fill-mask with an MLM head)", out.display());
    } else {
        println!("next: jielong generate --checkpoint {0} --prompt \"...\"   (also: chat, eval, train --init-from {0})", out.display());
    }
    Ok(())
}
