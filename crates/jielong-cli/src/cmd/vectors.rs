//! `jielong vectors`: word vectors without tensors (crate `jielong-vectors`).
//!
//! - `train --method skipgram|cbow|glove|fasttext --out DIR INPUT…` writes `DIR/vectors.bin`
//!   (word2vec binary), `vectors.txt` (word2vec text), `vectors.glove.txt` (GloVe) or
//!   `vectors.vec` and `ngrams.bin` (fastText), and `meta.json`, all at once or not at all.
//! - `neighbors`, `analogy`, `similarity` query a vectors folder or file; `eval` scores it on
//!   the Google analogies, WordSim353 and SimLex-999 as gensim does; `plot` draws a PCA map.

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use jielong_core::Error;
use jielong_text::Units;
use jielong_vectors::eval::{self, Index};
use jielong_vectors::fasttext::{self, BagNorm, FastTextConfig, FastTextModel, FastTextTrained};
use jielong_vectors::fasttext_bin::{self, BinArgs, FastTextBin};
use jielong_vectors::formats::{self, Format};
use jielong_vectors::glove::{self, GloveConfig};
use jielong_vectors::schedule::Progress;
use jielong_vectors::word2vec::{self, Arch, Loss, Word2VecConfig};
use jielong_vectors::{Corpus, CorpusOptions, Embeddings};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `println!` that returns the write error (a closed pipe ends the command quietly, exit 0).
macro_rules! say {
    ($($t:tt)*) => { writeln!(std::io::stdout(), $($t)*)? };
}

#[derive(Subcommand)]
pub enum Command {
    /// Learn word vectors from text: word2vec (skip-gram, CBOW), GloVe or fastText.
    Train(TrainArgs),
    /// Nearest words by cosine.
    Neighbors(NeighborsArgs),
    /// A is to B as C is to ?  (B − A + C, 3CosAdd, as gensim's most_similar).
    Analogy(AnalogyArgs),
    /// Cosine similarity of two words.
    Similarity(SimilarityArgs),
    /// Google analogies (accuracy per section), WordSim353 and SimLex-999 (Spearman ρ).
    Eval(EvalArgs),
    /// A 2-D PCA map of some words as SVG.
    Plot(PlotArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Skipgram,
    Cbow,
    Glove,
    Fasttext,
}

#[derive(ClapArgs)]
pub struct TrainArgs {
    #[arg(long, value_enum, default_value = "skipgram")]
    pub method: Method,
    /// Dimensions of each vector.
    #[arg(long, default_value_t = 100)]
    pub dim: usize,
    /// Context words on each side.
    #[arg(long, default_value_t = 5)]
    pub window: usize,
    /// Drop words seen fewer times than this.
    #[arg(long, default_value_t = 5)]
    pub min_count: u64,
    /// Negative samples per positive (word2vec, fastText).
    #[arg(long, default_value_t = 5)]
    pub negative: usize,
    /// Hierarchical softmax instead of negative sampling (word2vec).
    #[arg(long)]
    pub hs: bool,
    /// Subsampling threshold for frequent words (0 = off).
    #[arg(long, default_value_t = 1e-3)]
    pub sample: f64,
    /// Passes over the corpus (default 5; 25 for GloVe).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Worker threads (default: every CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Starting learning rate (default 0.025, fastText 0.05; GloVe's η 0.05).
    #[arg(long)]
    pub alpha: Option<f32>,
    /// Final learning rate of the linear decay.
    #[arg(long, default_value_t = 0.0001)]
    pub min_alpha: f32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// words (Unicode words, jieba for Chinese) or chars.
    #[arg(long, default_value = "words", value_parser = Units::parse)]
    pub units: Units,
    /// Lowercase every word first.
    #[arg(long)]
    pub lowercase: bool,
    /// GloVe: counts at which the weight reaches 1.
    #[arg(long, default_value_t = 100.0)]
    pub x_max: f64,
    /// GloVe: exponent of the weighting function.
    #[arg(long, default_value_t = 0.75)]
    pub glove_alpha: f64,
    /// fastText: shortest and longest character n-gram.
    #[arg(long, default_value_t = 3)]
    pub minn: usize,
    #[arg(long, default_value_t = 6)]
    pub maxn: usize,
    /// fastText: hash buckets for n-grams.
    #[arg(long, default_value_t = 2_000_000)]
    pub bucket: usize,
    /// fastText: also write `model.bin`, fastText's own model file (the `fasttext` tool and
    /// gensim's `load_facebook_model` read it). It holds every bucket row: 4 × dim × (vocabulary
    /// + bucket) bytes, 800 MB at the defaults; lower `--bucket` for a smaller file.
    #[arg(long)]
    pub bin: bool,
    /// fastText: while training, divide the sum of a word's rows by its number of n-grams
    /// (`ngrams`, gensim) or by the whole bag, word included (`bag`, fastText's C++ code).
    #[arg(long, value_enum, default_value = "ngrams")]
    pub bag_norm: BagNormArg,
    /// Compute σ exactly instead of word2vec's lookup table.
    #[arg(long)]
    pub exact_sigmoid: bool,
    /// Also write the corpus as the trainer saw it (kept words, one sentence a line).
    #[arg(long)]
    pub save_corpus: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Text files, folders or .jsonl files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

#[derive(ClapArgs)]
pub struct NeighborsArgs {
    /// A folder written by `vectors train`, or a word2vec/GloVe/fastText vectors file.
    #[arg(long)]
    pub vectors: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    #[arg(required = true)]
    pub words: Vec<String>,
}

#[derive(ClapArgs)]
pub struct AnalogyArgs {
    #[arg(long)]
    pub vectors: PathBuf,
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// A B C: A is to B as C is to ?  (e.g. man king woman)
    #[arg(num_args = 3, required = true)]
    pub words: Vec<String>,
}

#[derive(ClapArgs)]
pub struct SimilarityArgs {
    #[arg(long)]
    pub vectors: PathBuf,
    #[arg(num_args = 2, required = true)]
    pub words: Vec<String>,
}

#[derive(ClapArgs)]
pub struct EvalArgs {
    #[arg(long)]
    pub vectors: PathBuf,
    /// Analogy questions (`: section` lines, then `a b c d`).
    #[arg(long, default_value = "data/gensim/questions-words.txt")]
    pub analogies: PathBuf,
    /// Word-pair files (`w1<TAB>w2<TAB>score`).
    #[arg(long, num_args = 1.., default_values = ["data/gensim/wordsim353.tsv", "data/gensim/simlex999.txt"])]
    pub pairs: Vec<PathBuf>,
    /// Analogies use only this many most frequent words (gensim's restrict_vocab).
    #[arg(long, default_value_t = 30_000)]
    pub restrict: usize,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(ClapArgs)]
pub struct PlotArgs {
    #[arg(long)]
    pub vectors: PathBuf,
    /// Words to draw, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "top")]
    pub words: Vec<String>,
    /// Draw the N most frequent words.
    #[arg(long)]
    pub top: Option<usize>,
    /// pca (the two directions of largest variance) or tsne (keeps each word's neighbours near).
    #[arg(long, value_enum, default_value = "pca")]
    pub method: PlotMethod,
    /// t-SNE: effective neighbours per word (default 30, or (words − 1) / 3 when fewer words).
    #[arg(long)]
    pub perplexity: Option<f64>,
    /// t-SNE: gradient steps.
    #[arg(long, default_value_t = 1000)]
    pub iterations: usize,
    /// t-SNE: seed of the starting map.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

/// `--bag-norm` (see `jielong_vectors::fasttext::BagNorm`).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BagNormArg {
    Ngrams,
    Bag,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlotMethod {
    Pca,
    Tsne,
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Train(a) => train(a),
        Command::Neighbors(a) => neighbors(a),
        Command::Analogy(a) => analogy(a),
        Command::Similarity(a) => similarity(a),
        Command::Eval(a) => evaluate(a),
        Command::Plot(a) => plot(a),
    }
}

fn progress_bar() -> (indicatif::ProgressBar, impl FnMut(Progress)) {
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {msg} · {elapsed} elapsed, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let b = bar.clone();
    let update = move |p: Progress| {
        b.set_length(p.words_total.max(1));
        b.set_position(p.words_done);
        let rate = if p.seconds > 0.0 { p.words_done as f64 / p.seconds } else { 0.0 };
        b.set_message(format!("{:.0}k words/s, lr {:.5}", rate / 1000.0, p.alpha));
    };
    (bar, update)
}

fn train(a: TrainArgs) -> Result<()> {
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if threads == 0 {
        return Err(Error::input("--threads 0: use at least one thread").into());
    }
    let epochs = a.epochs.unwrap_or(if a.method == Method::Glove { 25 } else { 5 });
    let base = Word2VecConfig {
        arch: if a.method == Method::Cbow { Arch::Cbow } else { Arch::SkipGram },
        loss: if a.hs { Loss::Hierarchical } else { Loss::Negative(a.negative) },
        dim: a.dim,
        window: a.window,
        sample: a.sample,
        alpha: a.alpha.unwrap_or(if a.method == Method::Fasttext { 0.05 } else { 0.025 }),
        min_alpha: a.min_alpha,
        epochs,
        threads,
        seed: a.seed,
        ns_exponent: 0.75,
        exact_sigmoid: a.exact_sigmoid,
    };
    let glove_cfg = GloveConfig {
        dim: a.dim,
        window: a.window,
        x_max: a.x_max,
        alpha: a.glove_alpha,
        eta: a.alpha.unwrap_or(0.05) as f64,
        epochs,
        threads,
        seed: a.seed,
    };
    let bag_norm = match a.bag_norm {
        BagNormArg::Ngrams => BagNorm::Ngrams,
        BagNormArg::Bag => BagNorm::Bag,
    };
    let fasttext_cfg = FastTextConfig { base: base.clone(), minn: a.minn, maxn: a.maxn, bucket: a.bucket, bag_norm };
    // The flags first (cheap), so a bad one errors before the corpus is read.
    if a.bin && a.method != Method::Fasttext {
        return Err(Error::input("--bin writes fastText's model file: use it with --method fasttext").into());
    }
    if a.bin && a.bucket > i32::MAX as usize {
        return Err(Error::input(format!("--bucket {}: fastText's model file stores the bucket count as a 32-bit number", a.bucket)).into());
    }
    match a.method {
        Method::Skipgram | Method::Cbow => base.validate()?,
        Method::Glove => glove_cfg.validate()?,
        Method::Fasttext => fasttext_cfg.validate()?,
    }
    let (docs, report) = jielong_text::read_corpus(&a.inputs)?;
    let opts = CorpusOptions { units: a.units, lowercase: a.lowercase, min_count: a.min_count };
    let corpus = Corpus::build(docs.iter().map(|d| d.text.as_str()), &opts)?;
    drop(docs);
    if let Some(p) = &a.save_corpus {
        jielong_core::fs::write_atomic(p, corpus.to_lines().as_bytes())?;
    }
    let (bar, mut update) = progress_bar();
    let dir = jielong_core::fs::AtomicDir::new(&a.out)?;
    let mut files = vec![Format::Word2VecBinary, Format::Word2VecText];
    let mut extra_files: Vec<&str> = Vec::new();
    let (emb, seconds, hyper): (Embeddings, f64, serde_json::Value) = match a.method {
        Method::Skipgram | Method::Cbow => {
            let t = word2vec::train(&corpus, &base, &mut update)?;
            (t.embeddings, t.seconds, serde_json::to_value(&base)?)
        }
        Method::Glove => {
            let cfg = glove_cfg;
            let t = glove::train(&corpus, &cfg, &mut update)?;
            files.push(Format::GloveText);
            let mut h = serde_json::to_value(&cfg)?;
            h["cooccurrence_pairs"] = t.pairs.into();
            h["cost_per_epoch"] = serde_json::to_value(&t.costs)?;
            (t.embeddings, t.seconds, h)
        }
        Method::Fasttext => {
            let cfg = fasttext_cfg;
            let t = fasttext::train(&corpus, &cfg, &mut update)?;
            files.push(Format::FastTextVec);
            formats::write(&dir.path().join("ngrams.bin"), &t.model.ngram_rows, Format::Word2VecBinary)?;
            if a.bin {
                let bin = fasttext_bin_of(&cfg, &corpus, a.min_count, &t);
                bin.write(&dir.path().join("model.bin"))?;
                extra_files.push("model.bin");
            }
            (t.model.embeddings, t.seconds, serde_json::to_value(&cfg)?)
        }
    };
    bar.finish_and_clear();
    for f in &files {
        formats::write(&dir.path().join(f.file_name()), &emb, *f)?;
    }
    let trained_words = corpus.ids.len() as u64 * epochs as u64;
    let words_per_s = trained_words as f64 / seconds.max(1e-9);
    let meta = serde_json::json!({
        "format": "jielong-vectors/1",
        "method": a.method,
        "hyperparameters": hyper,
        "units": a.units,
        "lowercase": a.lowercase,
        "min_count": a.min_count,
        "corpus": {
            "inputs": a.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "files": report.files,
            "bytes": report.bytes,
            "raw_words": corpus.raw_words,
            "kept_words": corpus.ids.len(),
            "sentences": corpus.n_sentences(),
        },
        "vocab_size": emb.len(),
        "dim": emb.dim,
        "threads": threads,
        "train_seconds": seconds,
        "words_per_second": words_per_s,
        "files": files.iter().map(|f| f.file_name()).chain(extra_files.iter().copied()).collect::<Vec<_>>(),
    });
    jielong_core::fs::write_json_atomic(&dir.path().join("meta.json"), &meta)?;
    let out = dir.commit()?;
    say!(
        "{}: {} words in the vocabulary ({} words read, {} kept), {} epochs in {:.1} s: {:.0} words/s on {threads} thread{}",
        serde_json::to_value(a.method)?.as_str().unwrap_or("?"),
        emb.len(),
        corpus.raw_words,
        corpus.ids.len(),
        epochs,
        seconds,
        words_per_s,
        if threads == 1 { "" } else { "s" }
    );
    say!("wrote {} ({}, meta.json)", out.display(), files.iter().map(|f| f.file_name()).chain(extra_files.iter().copied()).collect::<Vec<_>>().join(", "));
    Ok(())
}

/// fastText's model file for a trained model: its arguments, the vocabulary with counts, the
/// word and n-gram input rows and the output vectors.
fn fasttext_bin_of(cfg: &FastTextConfig, corpus: &jielong_vectors::Corpus, min_count: u64, t: &FastTextTrained) -> FastTextBin {
    let b = &cfg.base;
    let neg = match b.loss {
        Loss::Negative(k) => k,
        Loss::Hierarchical => 0,
    };
    let model = &t.model;
    let dim = model.embeddings.dim;
    let ngram_rows = model.ngram_index.iter().map(|(&bucket, &r)| (bucket, model.ngram_rows.row(r).to_vec())).collect();
    FastTextBin {
        args: BinArgs {
            dim: dim as i32,
            ws: b.window as i32,
            epoch: b.epochs as i32,
            min_count: min_count as i32,
            neg: neg as i32,
            word_ngrams: 1,
            loss: fasttext_bin::LOSS_NEGATIVE,
            model: fasttext_bin::MODEL_SKIPGRAM,
            bucket: cfg.bucket as i32,
            minn: cfg.minn as i32,
            maxn: cfg.maxn as i32,
            lr_update_rate: 100,
            t: b.sample,
        },
        words: corpus.vocab.words.iter().cloned().zip(corpus.vocab.counts.iter().copied()).collect(),
        ntokens: corpus.raw_words,
        word_rows: t.word_rows.clone(),
        ngram_rows,
        output: t.output.clone(),
    }
}

/// The vectors and, for a fastText folder, the n-gram rows that give unseen words a vector.
fn load(path: &Path) -> Result<(Embeddings, Option<FastTextModel>)> {
    if path.is_file() && fasttext_bin::is_fasttext_bin(path) {
        let model = fasttext_bin::FastTextBin::read(path)?.to_model();
        return Ok((model.embeddings.clone(), Some(model)));
    }
    let (emb, _) = formats::load(path)?;
    let ngrams = path.join("ngrams.bin");
    if path.is_dir() && ngrams.is_file() {
        let meta: serde_json::Value = serde_json::from_str(&jielong_core::fs::read_to_string(&path.join("meta.json"))?)?;
        let h = &meta["hyperparameters"];
        let get = |k: &str| h[k].as_u64().map(|x| x as usize).ok_or_else(|| Error::format(path.join("meta.json"), format!("no `{k}` in hyperparameters")));
        let rows = formats::read(&ngrams, Format::Word2VecBinary)?;
        let ngram_index = rows.words.iter().enumerate().filter_map(|(i, w)| w.parse::<u32>().ok().map(|b| (b, i))).collect();
        let model = FastTextModel { embeddings: emb.clone(), minn: get("minn")?, maxn: get("maxn")?, bucket: get("bucket")?, ngram_index, ngram_rows: rows };
        return Ok((emb, Some(model)));
    }
    Ok((emb, None))
}

fn print_list(list: &[(String, f32)]) -> Result<()> {
    for (w, s) in list {
        say!("  {s:>7.4}  {w}");
    }
    Ok(())
}

fn neighbors(a: NeighborsArgs) -> Result<()> {
    let (emb, ft) = load(&a.vectors)?;
    let ix = Index::new(&emb);
    for w in &a.words {
        if ix.index.contains_key(w.as_str()) {
            say!("{w}:");
            print_list(&ix.neighbors(w, a.top)?)?;
        } else if let Some(v) = ft.as_ref().and_then(|m| m.word_vector(w)) {
            say!("{w} (not in the vocabulary; vector from its character n-grams):");
            print_list(&ix.nearest_to(&v, a.top))?;
        } else {
            return Err(Error::input(format!("{w:?} is not in the vocabulary of {} ({} words)", a.vectors.display(), emb.len())).into());
        }
    }
    Ok(())
}

fn analogy(a: AnalogyArgs) -> Result<()> {
    let (emb, _) = load(&a.vectors)?;
    let ix = Index::new(&emb);
    let (x, y, z) = (&a.words[0], &a.words[1], &a.words[2]);
    let list = ix.analogy(x, y, z, a.top)?;
    say!("{x} : {y} :: {z} : ?   ({y} − {x} + {z})");
    print_list(&list)?;
    Ok(())
}

fn similarity(a: SimilarityArgs) -> Result<()> {
    let (emb, _) = load(&a.vectors)?;
    let ix = Index::new(&emb);
    say!("{:.4}", ix.similarity(&a.words[0], &a.words[1])?);
    Ok(())
}

fn read_eval_file(p: &Path) -> Result<String> {
    if !p.exists() {
        return Err(Error::input(format!("{}: no such file (run scripts/fetch-data for the standard sets, or pass the file)", p.display())).into());
    }
    Ok(jielong_core::fs::read_to_string(p)?)
}

fn evaluate(a: EvalArgs) -> Result<()> {
    let (emb, _) = load(&a.vectors)?;
    let ix = Index::new(&emb);
    let questions = read_eval_file(&a.analogies)?;
    let rep = eval::evaluate_analogies(&ix, &questions, a.restrict);
    let mut pairs = Vec::new();
    for p in &a.pairs {
        let text = read_eval_file(p)?;
        pairs.push((p.display().to_string(), eval::evaluate_pairs(&ix, p, &text, 300_000)?));
    }
    if a.json {
        let v = serde_json::json!({
            "vectors": a.vectors.display().to_string(),
            "analogies": {
                "file": a.analogies.display().to_string(),
                "restrict": a.restrict,
                "accuracy": rep.total.accuracy(),
                "correct": rep.total.correct,
                "answered": rep.total.correct + rep.total.incorrect,
                "oov_questions": rep.oov_questions,
                "questions": rep.questions,
                "sections": rep.sections.iter().map(|s| serde_json::json!({"name": s.name, "correct": s.correct, "incorrect": s.incorrect, "accuracy": s.accuracy()})).collect::<Vec<_>>(),
            },
            "pairs": pairs.iter().map(|(f, r)| serde_json::json!({"file": f, "spearman": r.spearman, "pearson": r.pearson, "pairs": r.pairs, "oov_pairs": r.oov_pairs, "oov_ratio": r.oov_ratio()})).collect::<Vec<_>>(),
        });
        say!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    say!("analogies: {} ({} most frequent words)", a.analogies.display(), a.restrict);
    for s in &rep.sections {
        let n = s.correct + s.incorrect;
        if n > 0 {
            say!("  {:<32} {:>6.1}%  {:>5}/{}", s.name, 100.0 * s.accuracy(), s.correct, n);
        } else {
            say!("  {:<32}      -  (no question with every word known)", s.name);
        }
    }
    say!(
        "  {:<32} {:>6.1}%  {:>5}/{}   ({} of {} questions skipped: a word outside the vocabulary)",
        "total",
        100.0 * rep.total.accuracy(),
        rep.total.correct,
        rep.total.correct + rep.total.incorrect,
        rep.oov_questions,
        rep.questions
    );
    for (f, r) in &pairs {
        say!("{f}: Spearman ρ {:.4}, Pearson r {:.4} on {} pairs ({} pairs with an unknown word, {:.1}%)", r.spearman, r.pearson, r.pairs, r.oov_pairs, 100.0 * r.oov_ratio());
    }
    Ok(())
}

fn plot(a: PlotArgs) -> Result<()> {
    let (emb, _) = load(&a.vectors)?;
    let ix = Index::new(&emb);
    let words: Vec<String> = match a.top {
        Some(n) => emb.words.iter().take(n).cloned().collect(),
        None if !a.words.is_empty() => a.words.clone(),
        None => return Err(Error::input("say which words to draw: --words a,b,c or --top N").into()),
    };
    if words.len() < 2 {
        return Err(Error::input("a map needs at least two words").into());
    }
    let mut rows = Vec::new();
    for w in &words {
        rows.push(emb.row(ix.lookup(w)?).to_vec());
    }
    let (points, title, what) = match a.method {
        PlotMethod::Pca => {
            (jielong_vectors::pca::project_2d(&rows), format!("PCA of {} words from {}", words.len(), a.vectors.display()), "first two principal components".to_string())
        }
        PlotMethod::Tsne => {
            // Unit rows: distances then follow cosine similarity, as neighbors does.
            for r in &mut rows {
                let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    r.iter_mut().for_each(|x| *x /= norm);
                }
            }
            let perplexity = a.perplexity.unwrap_or_else(|| 30f64.min((words.len() as f64 - 1.0) / 3.0).max(1.0));
            let cfg = jielong_vectors::tsne::TsneConfig { perplexity, iterations: a.iterations, seed: a.seed };
            let points = jielong_vectors::tsne::tsne_2d(&rows, &cfg)?;
            let title = format!("t-SNE of {} words from {} (perplexity {perplexity:.3}, {} iterations)", words.len(), a.vectors.display(), a.iterations);
            (points, title, format!("t-SNE, perplexity {perplexity:.3}, seed {}", a.seed))
        }
    };
    jielong_core::fs::write_atomic(&a.out, jielong_vectors::pca::svg(&points, &words, &title).as_bytes())?;
    say!("wrote {} ({} words, {what})", a.out.display(), words.len());
    Ok(())
}
