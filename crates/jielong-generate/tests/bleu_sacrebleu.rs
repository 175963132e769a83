//! Corpus BLEU against sacrebleu (an independent implementation): tests/fixtures/bleu/cases.json
//! was written by make_fixture.py there (sacrebleu 2.6.0, default settings) from our own
//! English and Chinese sentences.

use jielong_generate::bleu::{corpus_bleu, BleuTokenize};

#[test]
fn bleu_matches_sacrebleu_on_the_fixture() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bleu/cases.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let strings = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect::<Vec<_>>();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let tok = if c["tokenize"] == "zh" { BleuTokenize::Zh } else { BleuTokenize::Tok13a };
        let (hyps, refs) = (strings(&c["hyps"]), strings(&c["refs"]));
        assert_eq!(BleuTokenize::for_references(&refs), tok, "{name}: the tokenizer picked from the references");
        let b = corpus_bleu(&hyps, &refs, tok);
        assert_eq!(b.sys_len as u64, c["sys_len"].as_u64().unwrap(), "{name}: hypothesis length");
        assert_eq!(b.ref_len as u64, c["ref_len"].as_u64().unwrap(), "{name}: reference length");
        for (n, p) in c["precisions"].as_array().unwrap().iter().enumerate() {
            assert!((b.precisions[n] - p.as_f64().unwrap()).abs() < 1e-9, "{name}: {}-gram precision {} vs {p}", n + 1, b.precisions[n]);
        }
        let want = c["score"].as_f64().unwrap();
        assert!((b.score - want).abs() < 1e-9, "{name}: BLEU {} vs sacrebleu {want}", b.score);
    }
}
