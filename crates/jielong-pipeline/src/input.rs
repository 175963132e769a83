//! Streaming documents out of the inputs: text files (one document each), folders (walked in
//! sorted order), JSONL (`text`, or `html` to extract; `id`/`url` kept in the source), HTML
//! files, and WARC archives (HTML `response` records extracted, WET `conversion` records
//! taken as text), each plain or compressed as `.gz` or `.zst`.
//!
//! Documents are handed to a callback one at a time, so memory stays flat however large the
//! input. A file that cannot be read (truncated archive, bad gzip, not text) is an
//! [`InputProblem`]: the caller counts and reports it, or stops on it under `--strict`.

use crate::html;
use jielong_core::{Error, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// A document as read, before any stage. HTML is extracted later, on the worker threads.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDoc {
    pub source: String,
    /// Text, or the page's HTML when `html` is set.
    pub text: String,
    pub html: bool,
    pub url: Option<String>,
}

/// Counts the reader keeps for the report.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ReadStats {
    pub files: u64,
    pub bytes: u64,
    /// WARC records that are not HTML responses or WET conversions (requests, metadata, images).
    pub warc_records_skipped: u64,
    /// Documents decoded from a legacy encoding instead of UTF-8.
    pub encoding_repaired: u64,
    pub jsonl_bad_lines: u64,
}

impl ReadStats {
    pub fn merge(&mut self, o: &ReadStats) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.warc_records_skipped += o.warc_records_skipped;
        self.encoding_repaired += o.encoding_repaired;
        self.jsonl_bad_lines += o.jsonl_bad_lines;
    }
}

/// A file that could not be (fully) read.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct InputProblem {
    pub file: String,
    pub error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Jsonl,
    Html,
    Warc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

fn classify(path: &Path) -> Option<(Kind, Compression)> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, comp) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    let ext = stem.rsplit_once('.').map(|(_, e)| e)?;
    let kind = match ext {
        "txt" | "md" | "text" | "markdown" | "rst" => Kind::Text,
        "jsonl" | "ndjson" => Kind::Jsonl,
        "html" | "htm" | "xhtml" => Kind::Html,
        "warc" | "arc" => Kind::Warc,
        _ => return None,
    };
    Some((kind, comp))
}

/// Expand inputs into files (folders walked recursively, sorted; hidden entries skipped).
pub fn list_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    for input in inputs.iter().filter(|p| p.is_file()) {
        if classify(input).is_none() {
            return Err(Error::input(format!(
                "{}: unknown kind of input; name it .txt, .md, .jsonl, .html or .warc (optionally .gz or .zst)",
                input.display()
            )));
        }
    }
    jielong_text::reader::expand_inputs(
        inputs,
        &|p| classify(p).is_some(),
        "no input given: pass text, JSONL, HTML or WARC files, or folders of them",
        "inputs (.txt, .md, .jsonl, .html, .warc, optionally .gz or .zst)",
    )
}

fn open(path: &Path, comp: Compression) -> std::io::Result<Box<dyn BufRead>> {
    let f = std::fs::File::open(path)?;
    Ok(match comp {
        Compression::None => Box::new(BufReader::with_capacity(1 << 20, f)),
        Compression::Gzip => Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(BufReader::new(f)))),
        Compression::Zstd => Box::new(BufReader::new(zstd::Decoder::new(f)?)),
    })
}

/// Read one file, calling `emit` for every document. Errors from `emit` stop the read and
/// come back as `Err(Ok(e))`; a problem with the file itself comes back as `Err(Err(problem))`
/// after the documents read before it were emitted.
pub fn read_file(path: &Path, stats: &mut ReadStats, emit: &mut dyn FnMut(RawDoc) -> Result<()>) -> std::result::Result<(), std::result::Result<Error, InputProblem>> {
    let problem = |e: String| Err(Err(InputProblem { file: path.display().to_string(), error: e }));
    let Some((kind, comp)) = classify(path) else {
        return problem("unknown kind of input".into());
    };
    let mut r = match open(path, comp) {
        Ok(r) => r,
        Err(e) => return problem(e.to_string()),
    };
    stats.files += 1;
    let name = path.display().to_string();
    match kind {
        Kind::Text | Kind::Html => {
            let mut bytes = Vec::new();
            if let Err(e) = r.read_to_end(&mut bytes) {
                return problem(format!("read failed: {e}"));
            }
            stats.bytes += bytes.len() as u64;
            if bytes.contains(&0) {
                return problem("not text (it contains NUL bytes)".into());
            }
            let (text, repaired) = html::decode(&bytes);
            stats.encoding_repaired += repaired as u64;
            emit(RawDoc { source: name, text, html: kind == Kind::Html, url: None }).map_err(Ok)?;
        }
        Kind::Jsonl => {
            let mut line = Vec::new();
            let mut n = 0u64;
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(k) => stats.bytes += k as u64,
                    Err(e) => return problem(format!("read failed after line {n}: {e}")),
                }
                n += 1;
                let (s, repaired) = html::decode(&line);
                if s.trim().is_empty() {
                    continue;
                }
                stats.encoding_repaired += repaired as u64;
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) else {
                    stats.jsonl_bad_lines += 1;
                    continue;
                };
                let id = v.get("id").map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()));
                let url = v.get("url").and_then(|u| u.as_str());
                let source = match (id, url) {
                    (Some(id), _) => format!("{name}:{n} id={id}"),
                    (None, Some(u)) => format!("{name}:{n} {u}"),
                    _ => format!("{name}:{n}"),
                };
                let url = url.map(str::to_string);
                if let Some(t) = v.get("text").and_then(|t| t.as_str()) {
                    emit(RawDoc { source, text: t.to_string(), html: false, url }).map_err(Ok)?;
                } else if let Some(h) = v.get("html").and_then(|t| t.as_str()) {
                    emit(RawDoc { source, text: h.to_string(), html: true, url }).map_err(Ok)?;
                } else {
                    stats.jsonl_bad_lines += 1;
                }
            }
        }
        Kind::Warc => {
            let reader = warc::WarcReader::new(r);
            for (i, rec) in reader.iter_records().enumerate() {
                let rec = match rec {
                    Ok(rec) => rec,
                    Err(e) => return problem(format!("WARC record {}: {e}", i + 1)),
                };
                stats.bytes += rec.content_length();
                let url = rec.header(warc::WarcHeader::TargetURI).map(|u| u.into_owned());
                let source = format!("{name}#{} {}", i + 1, url.as_deref().unwrap_or(""));
                match rec.warc_type() {
                    warc::RecordType::Response => {
                        let body = rec.body();
                        let Some(split) = find(body, b"\r\n\r\n") else {
                            stats.warc_records_skipped += 1;
                            continue;
                        };
                        let head = String::from_utf8_lossy(&body[..split]).to_ascii_lowercase();
                        if !head.contains("content-type: text/html") && !head.contains("content-type: application/xhtml") {
                            stats.warc_records_skipped += 1;
                            continue;
                        }
                        let (page, repaired) = html::decode(&body[split + 4..]);
                        stats.encoding_repaired += repaired as u64;
                        emit(RawDoc { source: source.trim_end().to_string(), text: page, html: true, url }).map_err(Ok)?;
                    }
                    warc::RecordType::Conversion => {
                        let (t, repaired) = html::decode(rec.body());
                        stats.encoding_repaired += repaired as u64;
                        emit(RawDoc { source: source.trim_end().to_string(), text: t, html: false, url }).map_err(Ok)?;
                    }
                    _ => stats.warc_records_skipped += 1,
                }
            }
        }
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
