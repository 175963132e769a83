//! `jielong export --checkpoint DIR --format hf --out DIR [--dtype f32|f16|bf16]`: a checkpoint
//! as a Hugging Face folder that `transformers` loads unchanged.

use anyhow::Result;
use candle_core::DType;
use clap::{Args as ClapArgs, ValueEnum};
use jielong_train::Checkpoint;
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// config.json + model.safetensors + tokenizer files (`from_pretrained`).
    Hf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

#[derive(ClapArgs)]
pub struct Args {
    /// A run folder (its latest checkpoint) or a ckpt-NNNNNN folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[arg(long, value_enum, default_value = "hf")]
    pub format: Format,
    /// The folder to write (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Precision of the written weights.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Dtype,
}

pub fn run(a: Args) -> Result<()> {
    let ckpt = Checkpoint::open(&a.checkpoint)?;
    let dtype = match a.dtype {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::Bf16 => DType::BF16,
    };
    let Format::Hf = a.format;
    let out = jielong_train::interchange::export_hf(&ckpt, dtype, &a.out)?;
    println!("exported {} ({}, step {}) → {}", ckpt.dir.display(), ckpt.meta.model.describe(), ckpt.meta.step, out.display());
    let auto = if matches!(ckpt.meta.family.as_str(), "bert" | "albert") { "AutoModelForMaskedLM" } else { "AutoModelForCausalLM" };
    println!("  load it with: {auto}.from_pretrained(\"{0}\"), AutoTokenizer.from_pretrained(\"{0}\")", out.display());
    Ok(())
}
