//! The ARPA format (Doug Paul's, as SRILM and KenLM read and write it): a `\data\` section with
//! `ngram m=count` lines, then one `\m-grams:` section per order whose lines are
//! `log10-prob <TAB> w1 … wm [<TAB> log10-backoff]`, then `\end\`. Probabilities and
//! backoffs are base-10 logarithms; jielong writes −99 for log 0 (SRILM's convention: `<s>`,
//! which is never predicted, and the zero backoffs of an MLE model) and, like KenLM, reads
//! every number literally.
//!
//! jielong writes every number with Rust's shortest round-trip formatting, so export → import
//! gives back the same f64 values. Reading accepts KenLM's and SRILM's files; an ARPA file
//! without `<unk>` gets one with log10 p = −100, as KenLM does.

use crate::key::{pack, MAX_ORDER, MAX_VOCAB};
use crate::model::{ModelMeta, NgramModel};
use crate::table::Entry;
use crate::vocab::{Vocab, UNK};
use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

/// log10 0 in an ARPA file.
const LOG_ZERO: f64 = -99.0;

fn fmt(x: f64) -> String {
    if x == f64::NEG_INFINITY || x <= LOG_ZERO {
        "-99".to_string()
    } else if x == 0.0 {
        "0".to_string()
    } else {
        format!("{x}")
    }
}

/// Write `model` as an ARPA file at `path` (atomically).
pub fn write(model: &NgramModel, path: &Path) -> Result<()> {
    if let Some(bad) = model.vocab().words().iter().find(|w| w.chars().any(char::is_whitespace) || w.is_empty()) {
        return Err(Error::input(format!("unit {bad:?} contains whitespace, which an ARPA file cannot hold")));
    }
    crate::binary::write_streamed(path, |out| write_to(model, out))
}

fn write_to(model: &NgramModel, out: &mut dyn Write) -> std::io::Result<()> {
    let n = model.order();
    let vocab = model.vocab();
    writeln!(out, "\\data\\")?;
    for m in 1..=n {
        writeln!(out, "ngram {m}={}", model.count(m))?;
    }
    for m in 1..=n {
        writeln!(out, "\n\\{m}-grams:")?;
        for (ids, p, b) in model.ngrams(m) {
            write!(out, "{}\t", fmt(p))?;
            for (i, &id) in ids.iter().enumerate() {
                if i > 0 {
                    out.write_all(b" ")?;
                }
                out.write_all(vocab.word(id).as_bytes())?;
            }
            if m < n {
                write!(out, "\t{}", fmt(b))?;
            }
            out.write_all(b"\n")?;
        }
    }
    writeln!(out, "\n\\end\\")
}

/// Read an ARPA file; its units are cut with `units` when it is used on text (KenLM's files
/// are whitespace-separated: "space").
pub fn read(path: &Path) -> Result<NgramModel> {
    let file = std::fs::File::open(path).at(path)?;
    let mut lines = BufReader::new(file).lines().enumerate().map(|(i, l)| (i + 1, l));
    let err = |line: usize, msg: String| Error::format(path, format!("line {line}: {msg}"));
    let mut next = || -> Result<Option<(usize, String)>> {
        match lines.next() {
            None => Ok(None),
            Some((i, Ok(l))) => Ok(Some((i, l))),
            Some((i, Err(e))) => Err(Error::format(path, format!("line {i}: {e} (is this an ARPA text file?)"))),
        }
    };

    // \data\ and its counts.
    loop {
        match next()? {
            None => return Err(Error::format(path, "no \\data\\ section: this is not an ARPA file")),
            Some((_, l)) if l.trim() == "\\data\\" => break,
            Some(_) => {}
        }
    }
    let mut declared: Vec<usize> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    while let Some((i, l)) = next()? {
        let t = l.trim();
        if t.is_empty() {
            if declared.is_empty() {
                continue;
            }
            break;
        }
        if t.starts_with('\\') {
            pending = Some((i, l));
            break;
        }
        let Some((m, c)) = t.strip_prefix("ngram ").and_then(|r| r.split_once('=')) else {
            return Err(err(i, format!("expected `ngram N=COUNT` in the \\data\\ section, found `{t}`")));
        };
        let m: usize = m.trim().parse().map_err(|_| err(i, format!("`{t}`: the order is not a number")))?;
        let c: usize = c.trim().parse().map_err(|_| err(i, format!("`{t}`: the count is not a number")))?;
        if m != declared.len() + 1 {
            return Err(err(i, format!("`{t}`: expected the count of order {}", declared.len() + 1)));
        }
        declared.push(c);
    }
    let n = declared.len();
    if n == 0 {
        return Err(Error::format(path, "the \\data\\ section lists no `ngram N=COUNT` lines"));
    }
    if n > MAX_ORDER {
        return Err(Error::format(path, format!("order {n} is above the highest jielong supports ({MAX_ORDER})")));
    }

    let mut vocab = Vocab::new();
    let mut unigrams: Vec<[f64; 2]> = vec![[f64::NAN, 0.0]; 3];
    let mut orders: Vec<Vec<Entry>> = Vec::new();
    let mut ids: Vec<u32> = Vec::with_capacity(MAX_ORDER);
    for m in 1..=n {
        // The section header.
        let header = format!("\\{m}-grams:");
        loop {
            let got = match pending.take() {
                Some(x) => Some(x),
                None => next()?,
            };
            match got {
                None => return Err(Error::format(path, format!("missing the {header} section (the \\data\\ section declares order {n})"))),
                Some((_, l)) if l.trim().is_empty() => continue,
                Some((_, l)) if l.trim() == header => break,
                Some((i, l)) => return Err(err(i, format!("missing the {header} section: found `{}` where it should start", l.trim()))),
            }
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(if m > 1 { declared[m - 1] } else { 0 });
        let mut seen = 0usize;
        loop {
            let Some((i, l)) = next()? else { break };
            let t = l.trim();
            if t.is_empty() {
                break;
            }
            if t.starts_with('\\') {
                pending = Some((i, l));
                break;
            }
            let mut fields = t.split_whitespace();
            let p_text = fields.next().unwrap_or_default();
            let p = parse_log(p_text).ok_or_else(|| err(i, format!("`{p_text}` is not a number (expected a log10 probability)")))?;
            ids.clear();
            for _ in 0..m {
                let Some(w) = fields.next() else {
                    return Err(err(i, format!("a {m}-gram line needs {m} units after its probability: `{t}`")));
                };
                if m == 1 {
                    ids.push(vocab.insert(w));
                } else {
                    ids.push(vocab.get(w).ok_or_else(|| err(i, format!("unit `{w}` is not in the \\1-grams: section")))?);
                }
            }
            let b = match fields.next() {
                None => 0.0,
                Some(b_text) => parse_log(b_text).ok_or_else(|| err(i, format!("`{b_text}` is not a number (expected a log10 backoff)")))?,
            };
            if fields.next().is_some() {
                return Err(err(i, format!("too many fields for a {m}-gram: `{t}`")));
            }
            if m == 1 {
                let id = ids[0] as usize;
                if id >= unigrams.len() {
                    unigrams.resize(id + 1, [f64::NAN, 0.0]);
                }
                if !unigrams[id][0].is_nan() {
                    return Err(err(i, format!("unit `{}` is listed twice", vocab.word(ids[0]))));
                }
                unigrams[id] = [p, b];
            } else {
                entries.push(Entry::new(pack(&ids), p, b));
            }
            seen += 1;
        }
        if seen != declared[m - 1] {
            return Err(Error::format(
                path,
                format!("the \\data\\ section says ngram {m}={} but the {header} section has {seen} entries", declared[m - 1]),
            ));
        }
        if m > 1 {
            entries.sort_unstable_by_key(|e| e.key());
            if entries.windows(2).any(|w| w[0].key() == w[1].key()) {
                return Err(Error::format(path, format!("the {header} section lists an n-gram twice")));
            }
            orders.push(entries);
        }
    }
    loop {
        let got = match pending.take() {
            Some(x) => Some(x),
            None => next()?,
        };
        match got {
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((_, l)) if l.trim() == "\\end\\" => break,
            Some((i, l)) => return Err(err(i, format!("expected \\end\\ after the {n}-grams, found `{}`", l.trim()))),
            None => return Err(Error::format(path, "missing \\end\\: the file is cut short")),
        }
    }
    if vocab.len() > MAX_VOCAB {
        return Err(Error::format(path, format!("{} units: more than jielong's n-gram keys hold ({MAX_VOCAB})", vocab.len())));
    }
    // Specials the file did not list: <unk> gets KenLM's −100; <s> and </s> log 0.
    unigrams.resize(vocab.len(), [f64::NAN, 0.0]);
    for (id, u) in unigrams.iter_mut().enumerate() {
        if u[0].is_nan() {
            u[0] = if id as u32 == UNK { -100.0 } else { f64::NEG_INFINITY };
        }
    }
    let meta = ModelMeta {
        order: n,
        smoothing: "arpa".into(),
        k: Vec::new(),
        discounts: Vec::new(),
        units: "space".into(),
        tokenizer: None,
        tokenizer_sha256: None,
        sentences: "lines".into(),
        prune: Vec::new(),
        training_sentences: 0,
        training_tokens: 0,
        suffix_closed: false,
    };
    let mut model = NgramModel::from_parts(meta, vocab, unigrams, orders);
    model.meta_mut().suffix_closed = model.check_suffix_closed();
    Ok(model)
}

/// A log10 value, taken literally as KenLM does (so −99 is 10^−99, not exactly zero).
fn parse_log(text: &str) -> Option<f64> {
    let v: f64 = text.parse().ok()?;
    (!v.is_nan() && v != f64::INFINITY).then_some(v)
}
