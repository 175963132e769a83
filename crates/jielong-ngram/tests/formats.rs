//! The two model files: ARPA export → import and binary write → memory-mapped load give back
//! the same model (every stored value bit for bit, hence the same probabilities), and broken
//! files are refused with one clear line.

use jielong_core::Rng;
use jielong_ngram::{arpa, binary, index_sentences, train, NgramModel, Smoothing, TrainConfig};
use std::path::Path;

fn model(order: usize, smoothing: Smoothing) -> NgramModel {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/ngram/train.txt")).unwrap();
    let corpus: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    let (vocab, ids) = index_sentences(&corpus, None, 0);
    let mut cfg = TrainConfig::new(order, smoothing);
    cfg.discount_fallback = Some(jielong_ngram::smoothing::FALLBACK);
    train(&ids, vocab, &cfg).unwrap()
}

fn same_values(a: &NgramModel, b: &NgramModel) {
    assert_eq!(a.order(), b.order());
    assert_eq!(a.vocab().words(), b.vocab().words());
    for m in 1..=a.order() {
        let (x, y) = (a.ngrams(m), b.ngrams(m));
        assert_eq!(x.len(), y.len(), "order {m}");
        for (e, f) in x.iter().zip(&y) {
            assert_eq!(e.0, f.0);
            // −∞ (log 0) is written as −99 in ARPA.
            let eq = |u: f64, v: f64| u == v || (u == f64::NEG_INFINITY && v == -99.0);
            assert!(eq(e.1, f.1) && eq(e.2, f.2), "order {m} {:?}: {:?} vs {:?}", e.0, (e.1, e.2), (f.1, f.2));
        }
    }
    let mut rng = Rng::new(7);
    for _ in 0..200 {
        let ctx: Vec<u32> = (0..rng.below(a.order() as u64)).map(|_| rng.below(a.vocab().len() as u64) as u32).collect();
        let w = rng.below(a.vocab().len() as u64) as u32;
        let (p, q) = (a.log10_prob(&ctx, w), b.log10_prob(&ctx, w));
        assert!(p == q || (p < -90.0 && q < -90.0), "{ctx:?} {w}: {p} vs {q}");
    }
}

#[test]
fn arpa_export_import_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for (order, smoothing) in [(3, Smoothing::ModifiedKneserNey), (2, Smoothing::Mle), (4, Smoothing::AddK { k: 0.5 }), (3, Smoothing::InterpolatedAddK { ks: vec![0.5; 3] })] {
        let m = model(order, smoothing);
        let path = dir.path().join("m.arpa");
        arpa::write(&m, &path).unwrap();
        let back = arpa::read(&path).unwrap();
        same_values(&m, &back);
        // And a second export is byte-identical.
        let again = dir.path().join("again.arpa");
        arpa::write(&back, &again).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap());
    }
}

#[test]
fn binary_write_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for (order, smoothing) in [(4, Smoothing::ModifiedKneserNey), (1, Smoothing::AddK { k: 1.0 }), (2, Smoothing::KneserNey)] {
        let m = model(order, smoothing);
        let path = dir.path().join("m.jlng");
        binary::write(&m, &path).unwrap();
        assert!(binary::is_binary(&path).unwrap());
        let back = jielong_ngram::load(&path).unwrap();
        assert_eq!(back.meta(), m.meta());
        same_values(&m, &back);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = "\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-1\t<s>\t-0.3\n-0.5\t</s>\n-0.4\ta\t-0.2\n-1.2\t<unk>\n\n\\2-grams:\n-0.2\t<s> a\n-0.1\ta </s>\n\n\\end\\\n";

#[test]
fn arpa_bad_files_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ok = arpa::read(&write(dir.path(), "good.arpa", GOOD)).unwrap();
    // p(</s> | a) = 10^-0.1 is stored; p(a | a) backs off: b(a) + p(a) = −0.2 − 0.4.
    assert_eq!(ok.log10_prob(&[ok.vocab().id("a")], 2), -0.1);
    assert!((ok.log10_prob(&[ok.vocab().id("a")], ok.vocab().id("a")) + 0.6).abs() < 1e-12);
    let cases = [
        (GOOD.replace("ngram 2=2", "ngram 2=3"), "says ngram 2=3 but the \\2-grams: section has 2 entries"),
        (GOOD.replace("\\2-grams:\n-0.2\t<s> a\n-0.1\ta </s>\n\n", ""), "missing the \\2-grams: section"),
        (GOOD.replace("-0.4\ta", "abc\ta"), "`abc` is not a number"),
        (GOOD.replace("-0.1\ta </s>", "-0.1\ta zebra"), "unit `zebra` is not in the \\1-grams: section"),
        (GOOD.replace("\\data\\\n", ""), "no \\data\\ section"),
        (GOOD.replace("\\end\\\n", ""), "missing \\end\\"),
        (GOOD.replace("ngram 2=2", "ngram two=2"), "the order is not a number"),
    ];
    for (text, needle) in cases {
        let e = arpa::read(&write(dir.path(), "bad.arpa", &text)).unwrap_err();
        let msg = e.to_string();
        assert!(e.is_user_error() && msg.contains(needle) && !msg.contains('\n'), "{msg}");
    }
}

#[test]
fn binary_of_another_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.jlng");
    binary::write(&model(2, Smoothing::KneserNey), &path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = binary::load(&path).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("format version 99, but this jielong reads version 2"), "{e}");
    // Cut short: refused, not a crash.
    bytes[8..12].copy_from_slice(&binary::FORMAT_VERSION.to_le_bytes());
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = binary::load(&path).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("damaged"), "{e}");
}
