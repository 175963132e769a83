//! Vector files in the formats other tools read, written atomically, and read back with
//! one-line errors for a wrong header or a row of the wrong width.
//!
//! - word2vec text (`vectors.txt`): a `<words> <dim>` line, then `word v1 … vdim` per line.
//!   Floats are written as the shortest decimal that reads back to the same `f32`, so a text
//!   round trip is exact too.
//! - word2vec binary (`vectors.bin`): the same header line, then per word its UTF-8 bytes, a
//!   space, `dim` little-endian `f32`s and a newline (word2vec.c's layout; what gensim's
//!   `KeyedVectors.load_word2vec_format(binary=True)` reads).
//! - GloVe text (`vectors.glove.txt`): word2vec text without the header line.
//! - fastText `.vec` (`vectors.vec`): word2vec text, as fastText's `-output` writes it.

use crate::embeddings::Embeddings;
use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Word2VecText,
    Word2VecBinary,
    GloveText,
    FastTextVec,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Word2VecBinary, Format::Word2VecText, Format::FastTextVec, Format::GloveText];

    /// The file name this format gets inside a vectors folder.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Word2VecText => "vectors.txt",
            Format::Word2VecBinary => "vectors.bin",
            Format::GloveText => "vectors.glove.txt",
            Format::FastTextVec => "vectors.vec",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Word2VecText => "word2vec text",
            Format::Word2VecBinary => "word2vec binary",
            Format::GloveText => "GloVe text",
            Format::FastTextVec => "fastText .vec",
        }
    }
}

/// The bytes of `emb` in `format`.
pub fn to_bytes(emb: &Embeddings, format: Format) -> Vec<u8> {
    match format {
        Format::Word2VecBinary => {
            let mut out = format!("{} {}\n", emb.len(), emb.dim).into_bytes();
            out.reserve(emb.len() * (emb.dim * 4 + 12));
            for (i, w) in emb.words.iter().enumerate() {
                out.extend_from_slice(w.as_bytes());
                out.push(b' ');
                for x in emb.row(i) {
                    out.extend_from_slice(&x.to_le_bytes());
                }
                out.push(b'\n');
            }
            out
        }
        _ => {
            let mut s = String::with_capacity(emb.len() * (emb.dim * 11 + 10));
            if format != Format::GloveText {
                let _ = writeln!(s, "{} {}", emb.len(), emb.dim);
            }
            for (i, w) in emb.words.iter().enumerate() {
                s.push_str(w);
                for x in emb.row(i) {
                    let _ = write!(s, " {x}");
                }
                s.push('\n');
            }
            s.into_bytes()
        }
    }
}

/// Write `emb` to `path` (temp file, then rename).
pub fn write(path: &Path, emb: &Embeddings, format: Format) -> Result<()> {
    check_words(emb)?;
    jielong_core::fs::write_atomic(path, &to_bytes(emb, format))
}

/// Words with whitespace cannot be stored in these formats (the space ends the word).
fn check_words(emb: &Embeddings) -> Result<()> {
    if let Some(w) = emb.words.iter().find(|w| w.is_empty() || w.chars().any(char::is_whitespace)) {
        return Err(Error::input(format!("word {w:?} is empty or holds whitespace, which vector files cannot store")));
    }
    Ok(())
}

/// Read a vectors file in `format`.
pub fn read(path: &Path, format: Format) -> Result<Embeddings> {
    let bytes = std::fs::read(path).at(path)?;
    match format {
        Format::Word2VecBinary => parse_binary(path, &bytes),
        Format::GloveText => parse_text(path, &bytes, false),
        _ => parse_text(path, &bytes, true),
    }
}

fn parse_header(path: &Path, line: &str, what: &str) -> Result<(usize, usize)> {
    let mut parts = line.split_whitespace();
    let parsed = (parts.next().and_then(|x| x.parse().ok()), parts.next().and_then(|x| x.parse().ok()), parts.next());
    match parsed {
        (Some(n), Some(d), None) if d > 0 => Ok((n, d)),
        _ => Err(Error::format(
            path,
            format!("not a {what} file: the first line should be `<number of words> <dimensions>`, found {:?}", truncate(line)),
        )),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn parse_text(path: &Path, bytes: &[u8], header: bool) -> Result<Embeddings> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::format(path, format!("not UTF-8 text ({e}); a .bin file is read as word2vec binary")))?;
    let mut lines = text.lines().enumerate();
    let mut dim = 0usize;
    let mut expected = None;
    if header {
        let (_, first) = lines.next().ok_or_else(|| Error::format(path, "empty file: no header line"))?;
        let (n, d) = parse_header(path, first, "word2vec text")?;
        dim = d;
        expected = Some(n);
    }
    let mut words = Vec::new();
    let mut data = Vec::new();
    for (i, line) in lines {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        let word = parts.next().unwrap_or_default();
        let before = data.len();
        for p in parts {
            let x: f32 = p.parse().map_err(|_| {
                Error::format(path, format!("line {}: {:?} is not a number (word {word:?})", i + 1, truncate(p)))
            })?;
            data.push(x);
        }
        let width = data.len() - before;
        if dim == 0 {
            dim = width;
            if dim == 0 {
                return Err(Error::format(path, format!("line {}: word {word:?} has no numbers after it", i + 1)));
            }
        }
        if width != dim {
            return Err(Error::format(path, format!("line {}: word {word:?} has {width} numbers, expected {dim}", i + 1)));
        }
        words.push(word.to_string());
    }
    if let Some(n) = expected {
        if n != words.len() {
            return Err(Error::format(path, format!("the header promises {n} words but the file holds {}", words.len())));
        }
    }
    if words.is_empty() {
        return Err(Error::format(path, "the file holds no vectors"));
    }
    Ok(Embeddings::new(words, dim, data))
}

fn parse_binary(path: &Path, bytes: &[u8]) -> Result<Embeddings> {
    let nl = bytes.iter().position(|&b| b == b'\n').ok_or_else(|| Error::format(path, "not a word2vec binary file: no header line"))?;
    let first = std::str::from_utf8(&bytes[..nl]).map_err(|_| Error::format(path, "not a word2vec binary file: the header is not text"))?;
    let (n, dim) = parse_header(path, first, "word2vec binary")?;
    let mut pos = nl + 1;
    let mut words = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n * dim);
    for i in 0..n {
        while pos < bytes.len() && bytes[pos] == b'\n' {
            pos += 1;
        }
        let sp = bytes[pos..].iter().position(|&b| b == b' ').map(|k| pos + k);
        let end = sp.map(|s| s + 1 + dim * 4);
        match (sp, end) {
            (Some(sp), Some(end)) if end <= bytes.len() => {
                let word = std::str::from_utf8(&bytes[pos..sp])
                    .map_err(|_| Error::format(path, format!("word {} of {n} is not UTF-8", i + 1)))?;
                words.push(word.to_string());
                for c in bytes[sp + 1..end].chunks_exact(4) {
                    data.push(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                }
                pos = end;
            }
            _ => {
                return Err(Error::format(
                    path,
                    format!("truncated: the header promises {n} words of {dim} dimensions but word {} is cut short", i + 1),
                ))
            }
        }
    }
    while pos < bytes.len() && bytes[pos] == b'\n' {
        pos += 1;
    }
    if pos != bytes.len() {
        return Err(Error::format(
            path,
            format!("{} bytes after the {n} words the header promises (is the dimension in the header right? it says {dim})", bytes.len() - pos),
        ));
    }
    Ok(Embeddings::new(words, dim, data))
}

/// Load vectors from a folder written by `jielong vectors train` (its `vectors.bin`, else the
/// first text format present) or from a single file (`.bin` is binary; a text file with a
/// `<words> <dim>` first line is word2vec text, otherwise GloVe text).
pub fn load(path: &Path) -> Result<(Embeddings, PathBuf)> {
    if path.is_dir() {
        for f in Format::ALL {
            let p = path.join(f.file_name());
            if p.is_file() {
                return Ok((read(&p, f)?, p));
            }
        }
        return Err(Error::input(format!(
            "{}: no vectors file in this folder (looked for vectors.bin, vectors.txt, vectors.vec, vectors.glove.txt); train with `jielong vectors train --out {}`",
            path.display(),
            path.display()
        )));
    }
    if !path.exists() {
        return Err(Error::input(format!("{}: no such vectors file or folder", path.display())));
    }
    let format = detect(path)?;
    Ok((read(path, format)?, path.to_path_buf()))
}

fn detect(path: &Path) -> Result<Format> {
    if path.extension().is_some_and(|e| e == "bin") {
        return Ok(Format::Word2VecBinary);
    }
    use std::io::BufRead;
    let f = std::fs::File::open(path).at(path)?;
    let mut first = String::new();
    let _ = std::io::BufReader::new(f).read_line(&mut first);
    let parts: Vec<&str> = first.split_whitespace().collect();
    Ok(if parts.len() == 2 && parts.iter().all(|p| p.parse::<usize>().is_ok()) { Format::Word2VecText } else { Format::GloveText })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Embeddings {
        let words = vec!["the".to_string(), "词向量".to_string(), "x".to_string()];
        let data = vec![0.1f32, -2.5e-8, 3.0, f32::MIN_POSITIVE, 1.0 / 3.0, -0.0, 123456.79, 1e-30, -7.25];
        Embeddings::new(words, 3, data)
    }

    #[test]
    fn formats_round_trip_bit_for_bit() {
        let d = tempfile::tempdir().unwrap();
        let e = sample();
        for f in Format::ALL {
            let p = d.path().join(f.file_name());
            write(&p, &e, f).unwrap();
            let back = read(&p, f).unwrap();
            assert_eq!(back.words, e.words, "{f:?}");
            let a: Vec<u32> = back.data.iter().map(|x| x.to_bits()).collect();
            let b: Vec<u32> = e.data.iter().map(|x| x.to_bits()).collect();
            assert_eq!(a, b, "{f:?}");
            assert_eq!(load(&p).unwrap().0, e, "detected format of {f:?}");
        }
        assert_eq!(load(d.path()).unwrap().1, d.path().join("vectors.bin"));
        let bin = std::fs::read(d.path().join("vectors.bin")).unwrap();
        assert!(bin.starts_with(b"3 3\nthe "));
        assert_eq!(bin.len(), 4 + 3 * (3 * 4 + 2) + "the词向量x".len());
        let txt = std::fs::read_to_string(d.path().join("vectors.txt")).unwrap();
        assert!(txt.starts_with("3 3\nthe 0.1 -0.000000025 3\n"), "{txt}");
        assert!(!std::fs::read_to_string(d.path().join("vectors.glove.txt")).unwrap().starts_with("3 3"));
    }

    #[test]
    fn formats_bad_files_give_one_line_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v.txt");
        let cases: [(&str, &str); 4] = [
            ("three 2\na 1 2\n", "first line should be"),
            ("2 2\na 1 2\nb 1 2 3\n", "line 3: word \"b\" has 3 numbers, expected 2"),
            ("3 2\na 1 2\nb 1 2\n", "promises 3 words but the file holds 2"),
            ("2 2\na 1 x\nb 1 2\n", "\"x\" is not a number"),
        ];
        for (text, needle) in cases {
            std::fs::write(&p, text).unwrap();
            let e = read(&p, Format::Word2VecText).unwrap_err();
            assert!(e.is_user_error() && e.to_string().contains(needle), "{e}");
            assert_eq!(e.to_string().lines().count(), 1);
        }
        std::fs::write(&p, "a 1 2\nb 1 2 3\n").unwrap();
        assert!(read(&p, Format::GloveText).unwrap_err().to_string().contains("expected 2"));
        let b = d.path().join("v.bin");
        let mut bytes = to_bytes(&sample(), Format::Word2VecBinary);
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&b, &bytes).unwrap();
        assert!(read(&b, Format::Word2VecBinary).unwrap_err().to_string().contains("truncated"));
        let mut bytes = to_bytes(&sample(), Format::Word2VecBinary);
        bytes[2] = b'2'; // header says 2 dimensions, rows hold 3
        std::fs::write(&b, &bytes).unwrap();
        assert!(read(&b, Format::Word2VecBinary).is_err());
        assert!(load(&d.path().join("missing")).unwrap_err().to_string().contains("no such vectors file"));
    }
}
