//! Parity with KenLM (no KenLM needed: the reference files are committed in
//! tests/fixtures/ngram, with the script and KenLM commit that made them).
//!
//! 1. Our modified Kneser-Ney on train.txt gives lmplz's ARPA: the same n-grams, and every
//!    log10 probability and backoff within 2e-6 (KenLM computes in f32 and prints 8 significant
//!    digits; we compute in f64).
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

#[test]
fn modified_kneser_ney_matches_lmplz_arpa() {
    for n in [2, 3, 4] {
        let (vocab, ids) = index_sentences(&lines("train.txt"), None, 0);
        let ours = train(&ids, vocab, &TrainConfig::new(n, Smoothing::ModifiedKneserNey)).unwrap();
        let kenlm = arpa::read(&fixture(&format!("kenlm-o{n}.arpa"))).unwrap();
        let (a, b) = (table(&ours), table(&kenlm));
        assert_eq!(a.len(), b.len(), "order {n}: n-gram counts differ");
        let mut worst = 0f64;
        for (gram, &(kp, kb)) in &b {
            let &(p, bo) = a.get(gram).unwrap_or_else(|| panic!("order {n}: KenLM has `{gram}`, we do not"));
            if gram != "<s>" {
                worst = worst.max((p - kp).abs());
                assert!((p - kp).abs() <= TOL, "order {n} `{gram}`: log10 p {p} vs KenLM {kp}");
            }
            worst = worst.max((bo - kb).abs());
            assert!((bo - kb).abs() <= TOL, "order {n} `{gram}`: log10 backoff {bo} vs KenLM {kb}");
        }
        eprintln!("order {n}: {} n-grams, largest difference {worst:.2e}", a.len());
    }
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
