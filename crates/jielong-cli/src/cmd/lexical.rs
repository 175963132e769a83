//! `jielong lexical index|search`: retrieval by shared words. `index` builds a folder with a
//! bag-of-words, TF-IDF or BM25 index of files, folders or JSONL; `search` ranks its documents
//! for a query and shows the best passage of each with the query's words marked.

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};
use jielong_core::Error;
use jielong_lexical::{read_docs, LexicalIndex, Params, Scheme, Split, TfMode};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum Command {
    /// Build an index folder from text files, folders or JSONL (`text`, optional `id`, `title`).
    Index(IndexArgs),
    /// Rank the documents of an index for a query.
    Search(SearchArgs),
}

#[derive(ClapArgs)]
pub struct IndexArgs {
    /// bow (counts, cosine), tfidf (cosine) or bm25.
    #[arg(long, default_value = "bm25")]
    pub scheme: String,
    /// TF-IDF term frequency: raw, log (1 + ln tf) or augmented (0.5 + 0.5 tf / max tf).
    #[arg(long)]
    pub tf: Option<String>,
    /// BM25 term-frequency saturation (default 1.2).
    #[arg(long, allow_negative_numbers = true)]
    pub k1: Option<f64>,
    /// BM25 length normalisation, 0 to 1 (default 0.75).
    #[arg(long, allow_negative_numbers = true)]
    pub b: Option<f64>,
    /// How text files become documents: none (a file is one), paragraphs (blank-line separated)
    /// or lines. JSONL records are always one document each.
    #[arg(long, default_value = "none")]
    pub split: String,
    /// The index folder to write (replaced if it is an index already).
    #[arg(long)]
    pub out: PathBuf,
    /// Text files, folders or .jsonl files.
    #[arg(required = true)]
    pub docs: Vec<PathBuf>,
}

#[derive(ClapArgs)]
pub struct SearchArgs {
    /// The index folder (from `jielong lexical index`).
    #[arg(long)]
    pub index: PathBuf,
    /// The query, in any language the index holds.
    #[arg(required_unless_present = "queries")]
    pub query: Option<String>,
    /// Batch mode: one query per line of FILE; prints one JSON line per query (ranked ids and
    /// scores, no passages) and the queries per second on stderr.
    #[arg(long, conflicts_with = "query")]
    pub queries: Option<PathBuf>,
    /// Number of results.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// JSON instead of text (snippet byte spans of the matches included).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Index(a) => index(a),
        Command::Search(a) => search(a),
    }
}

fn index(a: IndexArgs) -> Result<()> {
    let scheme = Scheme::parse(&a.scheme)?;
    let tf = a.tf.as_deref().map(TfMode::parse).transpose()?;
    let params = Params::new(scheme, tf, a.k1, a.b)?;
    let split = Split::parse(&a.split)?;
    let t0 = Instant::now();
    let docs = read_docs(&a.docs, split)?;
    let report = LexicalIndex::build(docs, params, &a.out)?;
    let m = &report.meta;
    println!(
        "indexed {} documents ({} words, {} distinct terms) with {} in {:.2} s → {}",
        m.documents,
        m.words,
        m.terms,
        m.params.describe(),
        t0.elapsed().as_secs_f64(),
        report.path.display()
    );
    Ok(())
}

fn search(a: SearchArgs) -> Result<()> {
    if a.k == 0 {
        return Err(Error::input("--k 0 asks for no results: use --k 1 or more").into());
    }
    let index = LexicalIndex::open(&a.index)?;
    if let Some(file) = &a.queries {
        return batch(&index, file, a.k);
    }
    let query = a.query.clone().unwrap_or_default();
    let terms = index.query_terms(&query)?;
    let hits = index.search(&query, a.k)?;
    let meta = index.meta();
    let note = if terms.known.is_empty() && terms.unknown.is_empty() {
        Some("the query has no words (only punctuation or spaces): nothing to look up".to_string())
    } else if terms.known.is_empty() {
        Some(format!(
            "none of the query's words ({}) occurs in the {} documents of this index",
            terms.unknown.join(", "),
            meta.documents
        ))
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let value = serde_json::json!({
            "query": query,
            "index": a.index.display().to_string(),
            "params": meta.params,
            "documents": meta.documents,
            "known_terms": terms.known,
            "unknown_terms": terms.unknown,
            "note": note,
            "results": hits,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    if let Some(note) = note {
        writeln!(out, "no results: {note}")?;
        return Ok(());
    }
    let (open, close) = if std::io::stdout().is_terminal() { ("\x1b[1m", "\x1b[0m") } else { ("«", "»") };
    let mut head = format!("{} · {} documents · query words: {}", meta.params.describe(), meta.documents, terms.known.join(", "));
    if !terms.unknown.is_empty() {
        head += &format!(" (not in the index: {})", terms.unknown.join(", "));
    }
    writeln!(out, "{head}")?;
    for (i, h) in hits.iter().enumerate() {
        let title = h.title.as_deref().map(|t| format!("  {t}")).unwrap_or_default();
        writeln!(out, "{:>2}. {:.4}  {}{title}", i + 1, h.score, h.doc_id)?;
        writeln!(out, "    {}", h.marked(open, close))?;
    }
    Ok(())
}

/// One JSON line per query of `file`: `{"query", "results": [[doc_id, score], …]}`.
fn batch(index: &LexicalIndex, file: &std::path::Path, k: usize) -> Result<()> {
    let text = jielong_core::fs::read_to_string(file)?;
    let queries: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if queries.is_empty() {
        return Err(Error::input(format!("{}: no queries (one per line)", file.display())).into());
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let t0 = Instant::now();
    for q in &queries {
        let top = index.top_k(q, k)?;
        let results: Vec<(&str, f64)> = top.iter().map(|&(d, s)| (index.docs()[d].id.as_str(), s)).collect();
        writeln!(out, "{}", serde_json::json!({"query": q, "results": results}))?;
    }
    out.flush()?;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("{} queries in {:.3} s ({:.0} queries/s, k = {k})", queries.len(), secs, queries.len() as f64 / secs);
    Ok(())
}
