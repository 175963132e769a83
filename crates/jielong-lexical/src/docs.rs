//! The documents of an index: read from files, folders and JSONL (through `jielong_text`'s
//! reader functions, keeping a JSONL record's `id` and `title`), optionally cut into passages,
//! and stored as `docs.jsonl` in the index so search can show the matching passage.

use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// One retrievable document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    /// The JSONL record's `id`, else `path`, `path:line` (JSONL) or `path#N` (passage N, from 1).
    pub id: String,
    /// The JSONL record's `title`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    pub text: String,
}

/// How a text file is cut into documents (JSONL records are always one document each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// A file is one document.
    Files,
    /// Paragraphs separated by blank lines.
    Paragraphs,
    /// Each non-empty line.
    Lines,
}

impl Split {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" | "files" | "file" => Ok(Split::Files),
            "paragraphs" | "paragraph" => Ok(Split::Paragraphs),
            "lines" | "line" => Ok(Split::Lines),
            other => Err(Error::input(format!("--split `{other}` is not known: use none, paragraphs or lines"))),
        }
    }
}

/// Read the documents under `inputs` (files, folders, `.jsonl` with a `text` field).
pub fn read_docs(inputs: &[PathBuf], split: Split) -> Result<Vec<Doc>> {
    let files = jielong_text::reader::list_files(inputs)?;
    let mut docs = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).at(path)?;
        let (text, _) = jielong_text::reader::decode_text(path, &bytes)?;
        let is_jsonl = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
        if is_jsonl {
            read_jsonl(path, &text, &mut docs)?;
        } else {
            cut(&path.display().to_string(), &text, split, &mut docs);
        }
    }
    Ok(docs)
}

fn read_jsonl(path: &Path, text: &str, docs: &mut Vec<Doc>) -> Result<()> {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            Error::format(path, format!("line {}: not valid JSON ({e}); each line must be an object with a \"text\" field", i + 1))
        })?;
        let Some(text) = value.get("text").and_then(|t| t.as_str()) else { continue };
        let id = match value.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v @ serde_json::Value::Number(_)) => v.to_string(),
            _ => format!("{}:{}", path.display(), i + 1),
        };
        let title = value.get("title").and_then(|t| t.as_str()).map(str::to_string);
        docs.push(Doc { id, title, text: text.to_string() });
    }
    Ok(())
}

fn cut(source: &str, text: &str, split: Split, docs: &mut Vec<Doc>) {
    let pieces: Vec<&str> = match split {
        Split::Files => vec![text],
        Split::Lines => text.lines().collect(),
        Split::Paragraphs => paragraphs(text),
    };
    let whole = split == Split::Files;
    let mut n = 0;
    for p in pieces {
        let p = p.trim();
        if p.is_empty() && !whole {
            continue;
        }
        n += 1;
        let id = if whole { source.to_string() } else { format!("{source}#{n}") };
        docs.push(Doc { id, title: None, text: p.to_string() });
    }
}

/// Paragraphs: runs of lines separated by one or more blank (whitespace-only) lines.
fn paragraphs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                out.push(&text[s..end]);
            }
        } else {
            start.get_or_insert(offset);
            end = offset + line.len();
        }
        offset += line.len();
    }
    if let Some(s) = start {
        out.push(&text[s..end]);
    }
    out
}

/// Write `docs` as JSON lines to `path` (inside an index folder that is still being built).
pub fn write_docs(path: &Path, docs: &[Doc]) -> Result<()> {
    let f = std::fs::File::create(path).at(path)?;
    let mut w = std::io::BufWriter::new(f);
    for d in docs {
        serde_json::to_writer(&mut w, d).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        w.write_all(b"\n").at(path)?;
    }
    w.flush().at(path)
}

/// Read `docs.jsonl` back.
pub fn load_docs(path: &Path) -> Result<Vec<Doc>> {
    let f = std::fs::File::open(path).at(path)?;
    let mut docs = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.at(path)?;
        let doc = serde_json::from_str(&line)
            .map_err(|e| Error::format(path, format!("line {}: {e}; rebuild the index with `jielong lexical index`", i + 1)))?;
        docs.push(doc);
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_docs_keeps_jsonl_ids_and_splits_paragraphs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "{\"id\": 7, \"title\": \"T\", \"text\": \"x y\"}\n{\"text\": \"z\"}\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "one\ntwo\n\n \nthree\n").unwrap();
        let docs = read_docs(&[dir.path().to_path_buf()], Split::Paragraphs).unwrap();
        assert_eq!(docs.len(), 4);
        assert_eq!((docs[0].id.as_str(), docs[0].title.as_deref()), ("7", Some("T")));
        assert!(docs[1].id.ends_with("a.jsonl:2"), "{}", docs[1].id);
        assert_eq!(docs[2].text, "one\ntwo");
        assert!(docs[3].id.ends_with("b.txt#2") && docs[3].text == "three");
        let whole = read_docs(&[dir.path().join("b.txt")], Split::Files).unwrap();
        assert_eq!(whole.len(), 1);
        let path = dir.path().join("docs.jsonl");
        write_docs(&path, &docs).unwrap();
        assert_eq!(load_docs(&path).unwrap(), docs);
    }
}
