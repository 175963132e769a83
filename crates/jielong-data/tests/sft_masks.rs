//! jielong's SFT loss masks against TRL's: the fixture (made by `fixtures/sft/make_masks.py`
//! with transformers 5.23 and TRL 1.16) holds the ids and labels transformers'
//! `return_assistant_tokens_mask` and TRL's collator give for three conversations; jielong must
//! give the same ids and put loss on exactly the labelled tokens, end-of-turn tokens included.

use jielong_data::sft::{batches::padded, encode, LossOn, IGNORE};
use jielong_tokenizer::{ChatTemplate, Message, Tokenizer};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sft").join(name)
}

#[test]
fn sft_masks_match_trl_assistant_only_labels() {
    let ref_: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("masks.json")).unwrap()).unwrap();
    let tk = Tokenizer::load(&fixture("tokenizer.json")).unwrap();
    // The same template file, its {% generation %} tags ignored; its turn ends with <|im_end|>.
    let mut t = ChatTemplate::load(&fixture("chatml_generation.jinja")).unwrap();
    t.eos_token = "<|im_end|>".into();
    let convs: Vec<Vec<Message>> = serde_json::from_value(ref_["conversations"].clone()).unwrap();
    let labels: Vec<Vec<i64>> = serde_json::from_value(ref_["padded_labels"].clone()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(ref_["input_ids"].clone()).unwrap();
    let mut encoded = Vec::new();
    for (i, conv) in convs.iter().enumerate() {
        let e = encode(&t, &tk, conv, LossOn::Assistant).unwrap();
        assert_eq!(e.ids, ids[i], "conversation {i}: ids differ from transformers'");
        let trl: Vec<bool> = labels[i][..e.ids.len()].iter().map(|&l| l != -100).collect();
        assert_eq!(e.loss, trl, "conversation {i}: loss mask differs from TRL's");
        assert!(labels[i][e.ids.len()..].iter().all(|&l| l == -100), "padding carries no loss");
        encoded.push(e);
    }
    // Our padded batch: targets are TRL's labels shifted by one (the model predicts the next
    // token), padding ignored.
    let rows: Vec<_> = encoded.iter().collect();
    let b = padded(&rows, 0);
    for (r, lab) in labels.iter().enumerate() {
        for k in 0..b.seq_len {
            let want = lab.get(k + 1).copied().unwrap_or(-100);
            let got = b.targets[r * b.seq_len + k];
            assert_eq!(if want == -100 { IGNORE } else { want as u32 }, got, "row {r}, position {k}");
        }
    }
}
