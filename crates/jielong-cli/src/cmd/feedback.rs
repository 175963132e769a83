//! `jielong feedback`: what people said about the replies of `jielong serve`, summarised
//! (`stats`) or exported as training data for preference tuning (`export --format kto|dpo|jsonl`,
//! the shapes TRL's KTOTrainer and DPOTrainer read).

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use jielong_serve::feedback::{export, stats, Format, Store};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Counts of 👍, 👎 and pairwise choices, by model and checkpoint.
    Stats {
        /// The feedback database (`jielong serve` prints its path).
        #[arg(long)]
        db: PathBuf,
    },
    /// Write the feedback as JSON lines.
    Export {
        #[arg(long)]
        db: PathBuf,
        /// kto: prompt, completion, label · dpo: prompt, chosen, rejected · jsonl: every field.
        #[arg(long, value_enum)]
        format: ExportFormat,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Kto,
    Dpo,
    Jsonl,
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Stats { db } => {
            let rows = Store::open_existing(&db)?.rows()?;
            print!("{}", stats(&rows));
        }
        Command::Export { db, format, out } => {
            let rows = Store::open_existing(&db)?.rows()?;
            let f = match format {
                ExportFormat::Kto => Format::Kto,
                ExportFormat::Dpo => Format::Dpo,
                ExportFormat::Jsonl => Format::Jsonl,
            };
            let lines = export(&rows, f);
            let mut text = String::new();
            for l in &lines {
                text.push_str(&serde_json::to_string(l)?);
                text.push('\n');
            }
            jielong_core::fs::write_atomic(&out, text.as_bytes())?;
            eprintln!("{} lines from {} rows → {}", lines.len(), rows.len(), out.display());
        }
    }
    Ok(())
}
