//! Time fastText training alone (no file writing): `cargo run --release -p jielong-vectors
//! --example fasttext_speed -- CORPUS EPOCHS THREADS`. CORPUS: one sentence a line (what
//! `jielong vectors train --save-corpus` writes). Prints the training seconds and words/s, the
//! figure `meta.json` records as `words_per_second`.

use jielong_text::segment::Units;
use jielong_vectors::fasttext::{self, FastTextConfig};
use jielong_vectors::{Corpus, CorpusOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("corpus file");
    let epochs: usize = args.get(2).map_or(5, |s| s.parse().unwrap());
    let threads: usize = args.get(3).map_or(2, |s| s.parse().unwrap());
    let corpus = Corpus::build([text.as_str()], &CorpusOptions { units: Units::Words, lowercase: false, min_count: 5 }).unwrap();
    let mut cfg = FastTextConfig::default();
    cfg.base.epochs = epochs;
    cfg.base.threads = threads;
    cfg.base.alpha = 0.025;
    let t = fasttext::train(&corpus, &cfg, &mut |_| {}).unwrap();
    println!("{{\"seconds\": {:.3}, \"words_per_second\": {:.0}}}", t.seconds, t.words as f64 / t.seconds);
}
