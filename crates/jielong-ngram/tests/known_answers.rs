//! Known answers computed by hand on a toy corpus, and the property every smoothed model must
//! have: for any context, the next-unit distribution sums to one over the vocabulary (`<unk>`
//! and `</s>` included, `<s>` excluded).
//!
//! The toy corpus has two sentences, "a b a" and "b a", padded as
//!   <s> a b a </s>      <s> b a </s>
//! Vocabulary: <unk>, <s>, </s>, a, b; the units predicted are {<unk>, </s>, a, b}: |V| = 4.
//! Unigram counts (no <s>): a 3, b 2, </s> 2: T = 7.
//! Bigram counts: <s> a 1, <s> b 1, a b 1, a </s> 2, b a 2; so c(<s>) = 2, c(a) = 3, c(b) = 2.

use jielong_core::Rng;
use jielong_ngram::vocab::{BOS, EOS, UNK};
use jielong_ngram::{index_sentences, train, NgramModel, Smoothing, TrainConfig};

fn toy(order: usize, smoothing: Smoothing) -> NgramModel {
    let corpus = vec![vec!["a", "b", "a"], vec!["b", "a"]];
    let (vocab, ids) = index_sentences(&corpus, None, 0);
    train(&ids, vocab, &TrainConfig::new(order, smoothing)).unwrap()
}

/// p(w | context) of the toy model, by unit names.
fn p(model: &NgramModel, context: &[&str], w: &str) -> f64 {
    let v = model.vocab();
    let ctx: Vec<u32> = context.iter().map(|c| if *c == "<s>" { BOS } else { v.id(c) }).collect();
    10f64.powf(model.log10_prob(&ctx, v.id(w)))
}

fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
}

#[test]
fn mle_known_answers() {
    // p(b | a) = c(a b) / c(a) = 1/3; p(</s> | a) = 2/3; p(a | b) = 2/2 = 1; p(a | <s>) = 1/2.
    // An unseen word after a seen context: 0. An unseen context backs off to the unigram
    // p(a) = 3/7; p(<unk>) = 0.
    let m = toy(2, Smoothing::Mle);
    close(p(&m, &["a"], "b"), 1.0 / 3.0);
    close(p(&m, &["a"], "</s>"), 2.0 / 3.0);
    close(p(&m, &["b"], "a"), 1.0);
    close(p(&m, &["<s>"], "a"), 0.5);
    assert_eq!(p(&m, &["a"], "a"), 0.0);
    close(p(&m, &["zebra"], "a"), 3.0 / 7.0);
    assert_eq!(p(&m, &[], "zebra"), 0.0);
}

#[test]
fn laplace_and_add_k_known_answers() {
    // Laplace: p(w | h) = (c(h w) + 1) / (c(h) + 4).
    // p(b | a) = 2/7, p(a | a) = 1/7, p(</s> | a) = 3/7, p(<unk> | a) = 1/7 (they sum to 7/7);
    // p(a | b) = 3/6 = 1/2; p(b | <s>) = 2/6 = 1/3; an unseen context: 1/4.
    let m = toy(2, Smoothing::AddK { k: 1.0 });
    close(p(&m, &["a"], "b"), 2.0 / 7.0);
    close(p(&m, &["a"], "a"), 1.0 / 7.0);
    close(p(&m, &["a"], "</s>"), 3.0 / 7.0);
    close(p(&m, &["a"], "zebra"), 1.0 / 7.0);
    close(p(&m, &["b"], "a"), 0.5);
    close(p(&m, &["<s>"], "b"), 1.0 / 3.0);
    close(p(&m, &["zebra"], "b"), 0.25);
    // k = 0.5: p(b | a) = (1 + 0.5) / (3 + 0.5·4) = 0.3; p(a | a) = 0.5 / 5 = 0.1.
    let m = toy(2, Smoothing::AddK { k: 0.5 });
    close(p(&m, &["a"], "b"), 0.3);
    close(p(&m, &["a"], "a"), 0.1);
    // Unigram add-k (order 1), k = 1: p(a) = (3 + 1) / (7 + 4) = 4/11; p(<unk>) = 1/11.
    let m = toy(1, Smoothing::AddK { k: 1.0 });
    close(p(&m, &[], "a"), 4.0 / 11.0);
    close(p(&m, &["b"], "zebra"), 1.0 / 11.0);
}

#[test]
fn interpolated_add_k_known_answers() {
    // k = 1 at both orders. Unigram: p1(w) = (c(w) + 1) / (7 + 4):
    //   p1(a) = 4/11, p1(b) = 3/11, p1(</s>) = 3/11, p1(<unk>) = 1/11.
    // Bigram: p2(w | h) = (c(h w) + k|V| p1(w)) / (c(h) + k|V|) = (c(h w) + 4 p1(w)) / (c(h) + 4):
    //   p2(b | a)     = (1 + 12/11) / 7 = 23/77
    //   p2(a | a)     = (0 + 16/11) / 7 = 16/77
    //   p2(</s> | a)  = (2 + 12/11) / 7 = 34/77
    //   p2(<unk> | a) = (0 +  4/11) / 7 =  4/77        (23 + 16 + 34 + 4 = 77)
    let m = toy(2, Smoothing::InterpolatedAddK { ks: vec![1.0, 1.0] });
    close(p(&m, &[], "a"), 4.0 / 11.0);
    close(p(&m, &["a"], "b"), 23.0 / 77.0);
    close(p(&m, &["a"], "a"), 16.0 / 77.0);
    close(p(&m, &["a"], "</s>"), 34.0 / 77.0);
    close(p(&m, &["a"], "zebra"), 4.0 / 77.0);
}

#[test]
fn kneser_ney_known_answers() {
    // Bigrams (highest order, raw counts): <s> a 1, <s> b 1, a b 1, a </s> 2, b a 2:
    //   n1 = 3, n2 = 2, so D2 = n1 / (n1 + 2 n2) = 3/7.
    // Unigrams (adjusted: distinct left neighbours): a {<s>, b} 2, b {<s>, a} 2, </s> {a} 1:
    //   n1 = 1, n2 = 2, so D1 = 1/5; Σ a = 5; γ1 = D1 · 3 / 5 = 3/25; uniform 1/|V| = 1/4.
    //   p1(a) = (2 − 1/5)/5 + (3/25)(1/4) = 39/100 = p1(b); p1(</s>) = (1 − 1/5)/5 + 3/100 = 19/100;
    //   p1(<unk>) = 3/100.
    // Context a: children b (1), </s> (2), Σ = 3, γ(a) = D2 · 2 / 3 = 2/7.
    //   p(b | a)     = (1 − 3/7)/3 + (2/7)(39/100) = 317/1050
    //   p(</s> | a)  = (2 − 3/7)/3 + (2/7)(19/100) = 607/1050
    //   p(a | a)     = (2/7)(39/100)              = 117/1050
    //   p(<unk> | a) = (2/7)(3/100)               =   9/1050     (317 + 607 + 117 + 9 = 1050)
    let m = toy(2, Smoothing::KneserNey);
    assert_eq!(m.meta().discounts, vec![[0.2; 3], [3.0 / 7.0; 3]]);
    close(p(&m, &[], "a"), 0.39);
    close(p(&m, &[], "</s>"), 0.19);
    close(p(&m, &[], "zebra"), 0.03);
    close(p(&m, &["a"], "b"), 317.0 / 1050.0);
    close(p(&m, &["a"], "</s>"), 607.0 / 1050.0);
    close(p(&m, &["a"], "a"), 117.0 / 1050.0);
    close(p(&m, &["a"], "zebra"), 9.0 / 1050.0);
}

fn fixture_model(order: usize, smoothing: Smoothing, prune: &[u64]) -> NgramModel {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/ngram/train.txt")).unwrap();
    let corpus: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    let (vocab, ids) = index_sentences(&corpus, None, prune.first().copied().unwrap_or(0));
    let mut cfg = TrainConfig::new(order, smoothing);
    cfg.prune = prune.to_vec();
    cfg.discount_fallback = Some(jielong_ngram::smoothing::FALLBACK);
    train(&ids, vocab, &cfg).unwrap()
}

#[test]
fn every_distribution_sums_to_one() {
    let mut rng = Rng::new(14);
    for order in 1..=5 {
        let methods = [
            (Smoothing::Mle, vec![]),
            (Smoothing::AddK { k: 1.0 }, vec![]),
            (Smoothing::AddK { k: 0.01 }, vec![]),
            (Smoothing::InterpolatedAddK { ks: (0..order).map(|i| 0.1 + i as f64).collect() }, vec![]),
            (Smoothing::KneserNey, vec![]),
            (Smoothing::ModifiedKneserNey, vec![]),
            (Smoothing::InterpolatedAddK { ks: vec![0.5; order] }, vec![0, 1, 1]),
            (Smoothing::KneserNey, vec![1, 1]),
            (Smoothing::ModifiedKneserNey, vec![0, 0, 1]),
        ];
        for (smoothing, prune) in methods {
            if prune.len() > order {
                continue;
            }
            let model = fixture_model(order, smoothing.clone(), &prune);
            let v = model.vocab().len() as u64;
            for trial in 0..40 {
                // Contexts: seen ones (taken from a training sentence), random ones, with <s>
                // first or not, with <unk>.
                let len = rng.below(order as u64 + 1) as usize;
                let mut ctx: Vec<u32> = (0..len).map(|_| match rng.below(5) {
                    0 => UNK,
                    _ => 3 + rng.below(v - 3) as u32,
                }).collect();
                if trial % 3 == 0 && !ctx.is_empty() {
                    ctx[0] = BOS;
                }
                if trial % 4 == 1 {
                    ctx = vec![BOS, model.vocab().id("the"), model.vocab().id("cat"), model.vocab().id("sat")];
                    ctx.truncate(len.max(1));
                }
                let sum: f64 = model.distribution(&ctx).iter().map(|lp| 10f64.powf(*lp)).sum();
                assert!((sum - 1.0).abs() <= 1e-9, "order {order} {smoothing:?} prune {prune:?} context {ctx:?}: sums to {sum}");
                assert!(model.log10_prob(&ctx, EOS) <= 0.0);
            }
        }
    }
}

#[test]
fn pruning_drops_rare_ngrams_and_unigram_threshold_makes_unk() {
    let full = fixture_model(3, Smoothing::ModifiedKneserNey, &[]);
    let pruned = fixture_model(3, Smoothing::ModifiedKneserNey, &[1, 1, 2]);
    for m in 1..=3 {
        assert!(pruned.count(m) < full.count(m), "order {m}: {} vs {}", pruned.count(m), full.count(m));
    }
    // Words seen once are <unk> in the pruned model.
    assert_eq!(pruned.vocab().get("zebra"), None);
    assert_eq!(pruned.vocab().get("language"), None);
    assert!(pruned.vocab().get("the").is_some());
}

#[test]
fn state_scoring_matches_backoff_search() {
    // The KenLM-style incremental scorer (used by eval) and the plain backoff search give the
    // same value for every word of random sentences, for every method and order: exactly
    // through the full-key entries, to f32 rounding through the hash-only 16-byte slots.
    let mut rng = Rng::new(5);
    for order in 1..=5 {
        for smoothing in [Smoothing::Mle, Smoothing::AddK { k: 0.5 }, Smoothing::InterpolatedAddK { ks: vec![0.5; order] }, Smoothing::ModifiedKneserNey] {
            let model = fixture_model(order, smoothing.clone(), &[]);
            let v = model.vocab().len() as u64;
            let the = model.vocab().id("the");
            for _ in 0..30 {
                let mut state = model.begin_sentence();
                let mut next = jielong_ngram::State::default();
                let (mut exact, mut exact_next) = (model.begin_sentence(), jielong_ngram::State::default());
                let mut ctx = vec![BOS];
                for i in 0..12 {
                    let w = if i % 3 == 0 { the } else { [UNK, EOS, 3 + rng.below(v - 3) as u32][rng.below(3) as usize] };
                    let e = model.score_exact(&exact, w, &mut exact_next);
                    let a = model.score(&state, w, &mut next);
                    let b = model.log10_prob(&ctx, w);
                    assert!(e == b || (e - b).abs() < 1e-12, "order {order} {smoothing:?} {ctx:?} {w}: exact {e} vs {b}");
                    // The fast path reads f32 values (as KenLM stores them): f32 rounding of
                    // each term, no more.
                    assert!(a == b || (a - b).abs() < 1e-6 * b.abs().max(1.0), "order {order} {smoothing:?} {ctx:?} {w}: {a} vs {b}");
                    assert_eq!(next.ctx, exact_next.ctx);
                    assert_eq!(next.len, exact_next.len);
                    std::mem::swap(&mut state, &mut next);
                    std::mem::swap(&mut exact, &mut exact_next);
                    ctx.push(w);
                }
            }
        }
    }
}
