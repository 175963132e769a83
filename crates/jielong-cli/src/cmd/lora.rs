//! `jielong lora merge --checkpoint BASE --adapter DIR --out DIR`: fold a LoRA adapter into its
//! base's weights (W + (α/r)·B·A) and write a checkpoint that loads without `--adapter`
//! (see `jielong_train::lora_merge`).

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Fold an adapter into the base weights; the result loads without --adapter.
    Merge(MergeArgs),
}

#[derive(ClapArgs)]
pub struct MergeArgs {
    /// The base checkpoint the adapter was trained on (a run folder or a ckpt-NNNNNN folder).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The adapter folder (`jielong sft --regime lora` or `jielong finetune --regime lora`).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Where the merged checkpoint goes (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Merge(a) => {
            let s = jielong_train::lora_merge::merge(&a.checkpoint, &a.adapter, &a.out)?;
            println!(
                "merged a rank-{} LoRA (alpha {}, scale {:.4}) on {} module(s) into the base's weights ({}) → {}",
                s.rank,
                s.alpha,
                s.alpha / s.rank as f64,
                s.modules,
                s.kind,
                s.out.display()
            );
            let next = if s.kind == "causal_lm" { format!("jielong generate --checkpoint {} --prompt …", s.out.display()) } else { format!("jielong predict --checkpoint {} TEXT", s.out.display()) };
            println!("no --adapter needed now; try: {next}");
            Ok(())
        }
    }
}
