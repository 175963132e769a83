//! `jielong data chat --from chatterbot|handbook [INPUT…] --out FILE.jsonl`: conversations in
//! the `messages` JSONL that `jielong sft` and `jielong eval --chat` read. Two sources:
//! chatterbot-corpus's YAML files (`scripts/fetch-data` puts its English and Chinese folders in
//! `data/chatterbot/`; each conversation's first speaker becomes the user, the second the
//! assistant), and the built-in instruction set made from the handbook (or from Markdown files
//! given as inputs): a question per section, answered by the section's own opening sentences.

use anyhow::Result;
use jielong_core::Error;
use jielong_tokenizer::Message;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Source {
    /// chatterbot-corpus YAML (`categories`, `conversations`: lists of alternating lines).
    Chatterbot,
    /// Questions about each `##` section of Markdown chapters (the built-in handbook when no
    /// input is given; a file under a `zh` folder gets Chinese questions).
    Handbook,
}

#[derive(clap::Args)]
pub struct Args {
    /// The format of the inputs.
    #[arg(long, value_enum)]
    pub from: Source,
    /// A system message to put first in every conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// The JSONL file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// .yml/.yaml files (chatterbot) or .md files (handbook), or folders holding them (walked
    /// in name order).
    pub inputs: Vec<PathBuf>,
}

/// Conversations as `{"messages": [...]}` lines, with `system` first in each when given.
pub fn to_jsonl(conversations: &[Vec<Message>], system: Option<&str>) -> String {
    let mut out = String::new();
    for conv in conversations {
        let mut msgs: Vec<serde_json::Value> = system.iter().map(|s| serde_json::json!({"role": "system", "content": s})).collect();
        msgs.extend(conv.iter().map(|m| serde_json::json!({"role": m.role, "content": m.content})));
        writeln!(out, "{}", serde_json::json!({ "messages": msgs })).expect("writing to a String");
    }
    out
}

pub fn run(a: Args) -> Result<()> {
    let (conversations, n_files) = match a.from {
        Source::Chatterbot => chatterbot(&a.inputs)?,
        Source::Handbook => handbook(&a.inputs)?,
    };
    if conversations.is_empty() {
        return Err(Error::input(format!("no conversation with a reply in {n_files} file(s)")).into());
    }
    jielong_core::fs::write_atomic(&a.out, to_jsonl(&conversations, a.system.as_deref()).as_bytes())?;
    println!("wrote {} conversations from {n_files} file(s) to {}", conversations.len(), a.out.display());
    Ok(())
}

fn chatterbot(inputs: &[PathBuf]) -> Result<(Vec<Vec<Message>>, usize)> {
    let is_yaml = |p: &Path| p.extension().is_some_and(|e| e == "yml" || e == "yaml");
    let files = jielong_text::reader::expand_inputs(inputs, &is_yaml, "no input given: pass chatterbot-corpus .yml files or folders (scripts/fetch-data puts them in data/chatterbot/)", "YAML files (.yml, .yaml)")?;
    let (mut convs, mut skipped, mut trailing) = (Vec::new(), Vec::new(), 0usize);
    for f in &files {
        let parsed = jielong_data::sft::chatterbot::read(f)?;
        trailing += parsed.dropped_trailing;
        skipped.extend(parsed.skipped.iter().map(|(i, why)| format!("{} conversation {}: {why}", f.display(), i + 1)));
        convs.extend(parsed.conversations);
    }
    if trailing > 0 {
        println!("  {trailing} last line(s) with no reply left out");
    }
    if let Some(first) = skipped.first() {
        println!("  {} conversation(s) skipped ({first}{})", skipped.len(), if skipped.len() > 1 { "; …" } else { "" });
    }
    Ok((convs, files.len()))
}

fn handbook(inputs: &[PathBuf]) -> Result<(Vec<Vec<Message>>, usize)> {
    if inputs.is_empty() {
        return Ok((jielong_data::sft::handbook::instructions(crate::corpus::HANDBOOK), crate::corpus::HANDBOOK.len()));
    }
    let is_md = |p: &Path| p.extension().is_some_and(|e| e == "md");
    let files = jielong_text::reader::expand_inputs(inputs, &is_md, "no input given", "Markdown files (.md)")?;
    let mut chapters = Vec::new();
    for f in &files {
        let lang = if f.components().any(|c| c.as_os_str() == "zh") { "zh" } else { "en" };
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        chapters.push((format!("{lang}/{name}"), jielong_core::fs::read_to_string(f)?));
    }
    let refs: Vec<(&str, &str)> = chapters.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    Ok((jielong_data::sft::handbook::instructions(&refs), files.len()))
}
