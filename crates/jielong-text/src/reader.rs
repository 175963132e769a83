//! Reading a corpus: plain text files, folders (recursively: .txt, .md, .text, .jsonl, .json
//! lines), and JSONL with a `text` field, each plain or compressed as `.gz` or `.zst` (so the
//! shards `jielong data clean` writes are read as they are). A file that is not text (NUL bytes, or mostly invalid
//! UTF-8) is an error naming the file; occasional invalid bytes in a real text are replaced with
//! U+FFFD and counted in the report.

use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use std::path::{Path, PathBuf};

/// One document: a whole text file, or one JSONL record.
#[derive(Debug, Clone)]
pub struct Document {
    /// `path` or `path:line` for JSONL records.
    pub source: String,
    pub text: String,
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReadReport {
    pub files: u64,
    pub documents: u64,
    pub bytes: u64,
    /// Invalid UTF-8 sequences replaced with U+FFFD.
    pub invalid_utf8_replaced: u64,
    /// JSONL lines skipped because they had no string `text` field.
    pub jsonl_lines_without_text: u64,
}

const TEXT_EXTENSIONS: &[&str] = &["txt", "md", "text", "jsonl", "markdown", "rst"];

/// Expand inputs (files and folders) into a sorted list of text files.
pub fn list_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let holds = format!("text files (looked for .{})", TEXT_EXTENSIONS.join(", ."));
    let is_text = |p: &Path| inner_extension(p).is_some_and(|e| TEXT_EXTENSIONS.contains(&e.as_str()));
    expand_inputs(inputs, &is_text, "no input given: pass one or more text files, folders or .jsonl files", &holds)
}

/// Expand `inputs` into files, the walk every reader of a corpus shares: a file is taken as
/// given, a folder is walked in name order (hidden entries skipped) keeping the files `keep`
/// accepts, and a `jielong data clean` output folder gives its kept shards only. `empty` is
/// the error for no inputs at all; `holds` says what a folder should hold, for the error when
/// one holds nothing.
pub fn expand_inputs(inputs: &[PathBuf], keep: &dyn Fn(&Path) -> bool, empty: &str, holds: &str) -> Result<Vec<PathBuf>> {
    if inputs.is_empty() {
        return Err(Error::input(empty));
    }
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::input(format!("{}: no such file or folder", input.display()))
            } else {
                Error::io(input, e)
            }
        })?;
        if meta.is_dir() {
            let before = files.len();
            walk(input, keep, &mut files)?;
            if files.len() == before {
                return Err(Error::input(format!("{}: folder holds no {holds}", input.display())));
            }
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .at(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    // A `jielong data clean` output folder: its kept documents are the top-level
    // `shard-NNNNN.jsonl.zst` files; `report.md` and the `removed/` documents are not text
    // to train on.
    let clean_output = dir.join("run.json").is_file() && dir.join("report.json").is_file();
    for path in entries {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if clean_output {
            if name.starts_with("shard-") && name.ends_with(".jsonl.zst") {
                out.push(path);
            }
            continue;
        }
        if path.is_dir() {
            walk(&path, keep, out)?;
        } else if keep(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// The extension that says what a file holds, under a `.gz` or `.zst` compression suffix.
fn inner_extension(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let stem = name.strip_suffix(".gz").or_else(|| name.strip_suffix(".zst")).unwrap_or(&name);
    stem.rsplit_once('.').map(|(_, e)| e.to_string())
}

/// The file's bytes, decompressed when it ends in `.gz` or `.zst`.
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let name = path.to_string_lossy().to_ascii_lowercase();
    let file = std::fs::File::open(path).at(path)?;
    let mut out = Vec::new();
    let bad = |e: std::io::Error| Error::format(path, format!("cannot decompress ({e})"));
    if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(file).read_to_end(&mut out).map_err(bad)?;
    } else if name.ends_with(".zst") {
        zstd::stream::Decoder::new(file).and_then(|mut d| d.read_to_end(&mut out)).map_err(bad)?;
    } else {
        std::io::BufReader::new(file).read_to_end(&mut out).at(path)?;
    }
    Ok(out)
}

/// Decode bytes as UTF-8, replacing invalid sequences. Refuses data that is clearly not text.
pub fn decode_text(path: &Path, bytes: &[u8]) -> Result<(String, u64)> {
    if bytes.contains(&0) {
        return Err(Error::format(
            path,
            "not a text file (it contains NUL bytes); pass UTF-8 text, a folder of text files, or JSONL",
        ));
    }
    let mut replaced = 0u64;
    let mut bad_bytes = 0usize;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            replaced += 1;
            bad_bytes += chunk.invalid().len();
            out.push('\u{FFFD}');
        }
    }
    // More than 1 in 20 bytes invalid: this is a binary file or another encoding (GBK, Latin-1...).
    if bad_bytes > 0 && bad_bytes * 20 > bytes.len() {
        return Err(Error::format(
            path,
            format!(
                "not UTF-8 text ({bad_bytes} of {} bytes are invalid UTF-8); convert it first, e.g. `iconv -f GBK -t UTF-8`",
                bytes.len()
            ),
        ));
    }
    Ok((out, replaced))
}

/// Read every document under `inputs`.
pub fn read_corpus(inputs: &[PathBuf]) -> Result<(Vec<Document>, ReadReport)> {
    let files = list_files(inputs)?;
    let mut report = ReadReport::default();
    let mut docs = Vec::new();
    for path in &files {
        let bytes = read_bytes(path)?;
        report.files += 1;
        report.bytes += bytes.len() as u64;
        let (text, replaced) = decode_text(path, &bytes)?;
        report.invalid_utf8_replaced += replaced;
        let is_jsonl = inner_extension(path).is_some_and(|e| e == "jsonl");
        if is_jsonl {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                    Error::format(path, format!("line {}: not valid JSON ({e}); each line must be an object with a \"text\" field", i + 1))
                })?;
                match value.get("text").and_then(|t| t.as_str()) {
                    Some(t) => docs.push(Document { source: format!("{}:{}", path.display(), i + 1), text: t.to_string() }),
                    None => report.jsonl_lines_without_text += 1,
                }
            }
        } else {
            docs.push(Document { source: path.display().to_string(), text });
        }
    }
    report.documents = docs.len() as u64;
    Ok((docs, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_folder_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "hello").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.jsonl"), "{\"text\":\"一\"}\n\n{\"id\":3}\n{\"text\":\"two\"}\n").unwrap();
        std::fs::write(dir.path().join("skip.bin"), [0u8, 1, 2]).unwrap();
        let (docs, rep) = read_corpus(&[dir.path().to_path_buf()]).unwrap();
        let texts: Vec<_> = docs.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(texts, ["hello", "一", "two"]);
        assert_eq!(rep.files, 2);
        assert_eq!(rep.jsonl_lines_without_text, 1);
    }

    #[test]
    fn reader_reads_zstd_and_gzip_jsonl() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let lines = "{\"text\":\"一\"}\n{\"text\":\"two\"}\n";
        std::fs::write(dir.path().join("a.jsonl.zst"), zstd::stream::encode_all(lines.as_bytes(), 3).unwrap()).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"three").unwrap();
        std::fs::write(dir.path().join("b.txt.gz"), gz.finish().unwrap()).unwrap();
        let (docs, _) = read_corpus(&[dir.path().to_path_buf()]).unwrap();
        let texts: Vec<_> = docs.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(texts, ["一", "two", "three"]);
    }

    #[test]
    fn reader_takes_only_the_kept_shards_of_a_clean_output_folder() {
        let dir = tempfile::tempdir().unwrap();
        let shard = zstd::stream::encode_all("{\"text\":\"kept\"}\n".as_bytes(), 3).unwrap();
        std::fs::write(dir.path().join("shard-00000.jsonl.zst"), &shard).unwrap();
        for f in ["run.json", "report.json"] {
            std::fs::write(dir.path().join(f), "{}").unwrap();
        }
        std::fs::write(dir.path().join("report.md"), "# report").unwrap();
        std::fs::create_dir(dir.path().join("removed")).unwrap();
        std::fs::write(dir.path().join("removed/pass-0-shard-00000.jsonl.zst"), &shard).unwrap();
        let (docs, _) = read_corpus(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(docs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>(), ["kept"]);
    }

    #[test]
    fn reader_replaces_occasional_invalid_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        let mut bytes = b"a fairly long line of perfectly ordinary text ".repeat(4);
        bytes.push(0xFF);
        std::fs::write(&p, &bytes).unwrap();
        let (docs, rep) = read_corpus(&[p]).unwrap();
        assert_eq!(rep.invalid_utf8_replaced, 1);
        assert!(docs[0].text.ends_with('\u{FFFD}'));
    }

    #[test]
    fn reader_rejects_binary_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.txt");
        std::fs::write(&p, [0x89, b'P', b'N', b'G', 0, 0, 0]).unwrap();
        let e = read_corpus(&[p]).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("not a text file"), "{e}");
        let e = read_corpus(&[dir.path().join("nope.txt")]).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("no such file"), "{e}");
        let e = read_corpus(&[]).unwrap_err();
        assert!(e.is_user_error());
        let gbk = dir.path().join("gbk.txt");
        std::fs::write(&gbk, [0xBD, 0xD3, 0xC1, 0xFA, 0xBD, 0xD3, 0xC1, 0xFA]).unwrap();
        let e = read_corpus(&[gbk]).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
