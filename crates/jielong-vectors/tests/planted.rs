//! Synthetic corpora with planted structure: words that share their contexts must end up each
//! other's nearest neighbours, for every method and loss. Four clusters of four "member" words;
//! each sentence puts one member among context words of its cluster only.

use jielong_text::Units;
use jielong_vectors::eval::Index;
use jielong_vectors::word2vec::{self, Arch, Loss, Word2VecConfig};
use jielong_vectors::{fasttext, glove, Corpus, CorpusOptions, Embeddings};

fn planted_corpus() -> Corpus {
    let mut rng = jielong_core::Rng::new(11);
    let mut text = String::new();
    for _ in 0..3000 {
        let k = rng.below(4) as usize;
        let member = format!("m{k}x{}", rng.below(4));
        let ctx = |r: &mut jielong_core::Rng| format!("c{k}y{}", r.below(6));
        let (a, b, c, d) = (ctx(&mut rng), ctx(&mut rng), ctx(&mut rng), ctx(&mut rng));
        text += &format!("{a} {b} {member} {c} {d}\n");
    }
    Corpus::build([text.as_str()], &CorpusOptions { units: Units::Words, lowercase: false, min_count: 1 }).unwrap()
}

/// Fraction of member words whose nearest member-word neighbour is in their own cluster, and
/// the mean cosine within clusters minus across them.
fn structure(e: &Embeddings) -> (f64, f64) {
    let ix = Index::new(e);
    let members: Vec<String> = (0..4).flat_map(|k| (0..4).map(move |i| format!("m{k}x{i}"))).collect();
    let mut right = 0;
    let (mut within, mut across, mut nw, mut na) = (0.0, 0.0, 0, 0);
    for a in &members {
        let mut best = (f32::MIN, String::new());
        for b in &members {
            if a == b {
                continue;
            }
            let s = ix.similarity(a, b).unwrap();
            if s > best.0 {
                best = (s, b.clone());
            }
            if a[..2] == b[..2] {
                within += s as f64;
                nw += 1;
            } else {
                across += s as f64;
                na += 1;
            }
        }
        right += (best.1[..2] == a[..2]) as usize;
    }
    (right as f64 / members.len() as f64, within / nw as f64 - across / na as f64)
}

fn w2v(arch: Arch, loss: Loss, threads: usize) -> Word2VecConfig {
    Word2VecConfig { arch, loss, dim: 24, window: 3, epochs: 5, threads, sample: 0.0, alpha: if arch == Arch::Cbow { 0.05 } else { 0.025 }, ..Default::default() }
}

#[test]
fn planted_word2vec_every_arch_and_loss_finds_the_clusters() {
    let c = planted_corpus();
    for arch in [Arch::SkipGram, Arch::Cbow] {
        for loss in [Loss::Negative(5), Loss::Hierarchical] {
            let t = word2vec::train(&c, &w2v(arch, loss, 2), &mut |_| {}).unwrap();
            let (nn, gap) = structure(&t.embeddings);
            assert_eq!(nn, 1.0, "{arch:?} {loss:?}: nearest neighbours {nn}, gap {gap}");
            // CBOW with hierarchical softmax separates least here (its member words only ever sit
            // in windows), but still clearly.
            assert!(gap > 0.05, "{arch:?} {loss:?}: within − across cosine {gap}");
        }
    }
}

#[test]
fn planted_random_vectors_do_not_find_the_clusters() {
    // The baseline the test above beats: untrained vectors.
    let c = planted_corpus();
    let e = Embeddings::new(c.vocab.words.clone(), 24, word2vec::init_rows(c.vocab.len(), 24, 1, 0));
    let (_, gap) = structure(&e);
    assert!(gap.abs() < 0.2, "random gap {gap}");
}

#[test]
fn planted_one_thread_is_reproducible() {
    let c = planted_corpus();
    let cfg = w2v(Arch::SkipGram, Loss::Negative(5), 1);
    let a = word2vec::train(&c, &cfg, &mut |_| {}).unwrap().embeddings;
    let b = word2vec::train(&c, &cfg, &mut |_| {}).unwrap().embeddings;
    assert_eq!(a, b);
    let d = word2vec::train(&c, &Word2VecConfig { seed: 2, ..cfg }, &mut |_| {}).unwrap().embeddings;
    assert_ne!(a, d);
}

#[test]
fn planted_glove_finds_the_clusters() {
    let c = planted_corpus();
    let cfg = glove::GloveConfig { dim: 24, window: 3, epochs: 30, threads: 2, x_max: 10.0, ..Default::default() };
    let t = glove::train(&c, &cfg, &mut |_| {}).unwrap();
    assert!(t.costs.last().unwrap() < &(t.costs[0] * 0.5), "cost falls: {:?}", t.costs);
    let (nn, gap) = structure(&t.embeddings);
    assert_eq!(nn, 1.0, "glove nn {nn}, gap {gap}");
}

#[test]
fn planted_fasttext_finds_the_clusters_and_builds_unseen_words() {
    let c = planted_corpus();
    let cfg = fasttext::FastTextConfig { base: w2v(Arch::SkipGram, Loss::Negative(5), 2), minn: 3, maxn: 6, bucket: 50_000, bag_norm: Default::default() };
    let t = fasttext::train(&c, &cfg, &mut |_| {}).unwrap();
    let (nn, gap) = structure(&t.model.embeddings);
    assert!(nn >= 0.9, "fasttext nn {nn}, gap {gap}");
    // An unseen word built from n-grams of a known one ("m2x1" → "m2x1z") lands near it.
    let unseen = t.model.word_vector("m2x1z").expect("n-grams give a vector");
    let e = &t.model.embeddings;
    let ix = Index::new(e);
    let cos = |w: &str| {
        let r = ix.lookup(w).unwrap();
        let v = e.row(r);
        let d: f32 = v.iter().zip(&unseen).map(|(a, b)| a * b).sum();
        d / (v.iter().map(|x| x * x).sum::<f32>().sqrt() * unseen.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    assert!(cos("m2x1") > cos("c0y3"), "unseen word near its look-alike");
    assert!(t.model.word_vector("qqqqqq").is_none());
}
