//! Parity with KenLM (no KenLM needed: the reference files are committed in
//! tests/fixtures/ngram, with the script and KenLM commit that made them).
//!
//! 1. Our modified Kneser-Ney on train.txt gives lmplz's ARPA: the same n-grams, and every
//!    log10 probability and backoff within 2e-6 (KenLM computes in f32 and prints 8 significant
//!    digits; we compute in f64).
//!    The same with `--prune` (lmplz's pruning: thresholds per order on raw counts).
//! 2. lmplz's ARPA, loaded by us, scores test.txt as KenLM's `query` did: every word's log10
//!    probability, each sentence's total, the OOV count and both perplexities.

use jielong_ngram::{arpa, index_sentences, train, NgramModel, Score, Smoothing, TrainConfig};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ngram").join(name)
}

fn lines(name: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(fixture(name)).unwrap().lines().filter(|l| !l.trim().is_empty()).map(|l| l.split_whitespace().map(String::from).collect()).collect()
}

/// Every n-gram of a model as "w1 w2 …" → (log10 p, log10 b).
fn table(model: &NgramModel) -> HashMap<String, (f64, f64)> {
    let mut out = HashMap::new();
    for m in 1..=model.order() {
        for (ids, p, b) in model.ngrams(m) {
            let words: Vec<&str> = ids.iter().map(|&i| model.vocab().word(i)).collect();
            out.insert(words.join(" "), (p, b));
        }
    }
    out
}

const TOL: f64 = 2e-6;

/// Train on train.txt as lmplz did for `arpa` and compare every n-gram's log10 probability
/// and backoff; returns the largest difference.
fn compare_with_lmplz(n: usize, prune: &[u64], arpa_name: &str) -> f64 {
    let (vocab, ids) = index_sentences(&lines("train.txt"), None, 0);
    let mut cfg = TrainConfig::new(n, Smoothing::ModifiedKneserNey);
    cfg.prune = prune.to_vec();
    let ours = train(&ids, vocab, &cfg).unwrap();
    let kenlm = arpa::read(&fixture(arpa_name)).unwrap();
    let (a, b) = (table(&ours), table(&kenlm));
    for m in 1..=n {
        assert_eq!(ours.count(m), kenlm.count(m), "{arpa_name}: {m}-gram counts differ");
    }
    assert_eq!(a.len(), b.len(), "{arpa_name}: n-gram counts differ");
    let mut worst = 0f64;
    for (gram, &(kp, kb)) in &b {
        let &(p, bo) = a.get(gram).unwrap_or_else(|| panic!("{arpa_name}: KenLM has `{gram}`, we do not"));
        if gram != "<s>" {
            worst = worst.max((p - kp).abs());
            assert!((p - kp).abs() <= TOL, "{arpa_name} `{gram}`: log10 p {p} vs KenLM {kp}");
        }
        worst = worst.max((bo - kb).abs());
        assert!((bo - kb).abs() <= TOL, "{arpa_name} `{gram}`: log10 backoff {bo} vs KenLM {kb}");
    }
    eprintln!("{arpa_name}: {} n-grams, largest difference {worst:.2e}", a.len());
    worst
}

#[test]
fn modified_kneser_ney_matches_lmplz_arpa() {
    for n in [2, 3, 4] {
        compare_with_lmplz(n, &[], &format!("kenlm-o{n}.arpa"));
    }
}

#[test]
fn pruned_modified_kneser_ney_matches_lmplz_prune() {
    // lmplz -o 3 --prune 0 1 and -o 4 --prune 0 1 1: singleton bigrams and up dropped, their
    // mass moved to their contexts' backoffs; the n-grams kept change probability too.
    compare_with_lmplz(3, &[0, 1], "kenlm-o3-prune01.arpa");
    compare_with_lmplz(4, &[0, 1, 1], "kenlm-o4-prune011.arpa");
}

#[test]
fn kenlm_arpa_scores_like_kenlm_query() {
    for n in [2, 3, 4] {
        let model = arpa::read(&fixture(&format!("kenlm-o{n}.arpa"))).unwrap();
        let reference = std::fs::read_to_string(fixture(&format!("kenlm-o{n}.query"))).unwrap();
        let mut score = Score::default();
        let mut ref_lines = reference.lines();
        for sentence in lines("test.txt") {
            let line = ref_lines.next().unwrap();
            let (words, total) = line.split_once("Total: ").unwrap();
            let ids = model.ids(&sentence);
            // Per word: "w=id order log10p" separated by tabs.
            let mut ctx = vec![jielong_ngram::vocab::BOS];
            for (field, &w) in words.split('\t').filter(|f| !f.is_empty()).zip(ids.iter().chain([&jielong_ngram::vocab::EOS])) {
                let want: f64 = field.rsplit(' ').next().unwrap().parse().unwrap();
                let got = model.log10_prob(&ctx, w);
                assert!((got - want).abs() <= 1e-6, "order {n} `{field}`: we give {got}");
                ctx.push(w);
            }
            let got = score.add_sentence(&model, &ids);
            let want: f64 = total.split_whitespace().next().unwrap().parse().unwrap();
            let oov: u64 = total.split_whitespace().nth(2).unwrap().parse().unwrap();
            assert!((got - want).abs() <= 1e-5, "order {n}: sentence total {got} vs KenLM {want}");
            assert_eq!(ids.iter().filter(|&&i| i == 0).count() as u64, oov);
        }
        let field = |name: &str| -> f64 { reference.lines().find_map(|l| l.strip_prefix(name)).unwrap().trim().parse().unwrap() };
        assert!((score.perplexity() / field("Perplexity including OOVs:") - 1.0).abs() < 1e-6);
        assert!((score.perplexity_without_oovs() / field("Perplexity excluding OOVs:") - 1.0).abs() < 1e-6);
        assert_eq!(score.oovs as f64, field("OOVs:"));
        assert_eq!(score.tokens as f64, field("Tokens:"));
    }
}
