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

/// Packing against TRL's padding-free collator (fixture `fixtures/sft/make_packing.py`): the
/// three conversations in one row give TRL's flattened ids, its position ids (restarting at 0
/// per example), its labels (shifted by one: our targets), and the block-diagonal causal mask
/// transformers builds from those position ids.
#[test]
fn sft_packing_matches_trl_padding_free_positions_labels_and_mask() {
    use jielong_data::batcher::PAD_SEGMENT;
    use jielong_data::sft::{packed, segment_positions};
    let masks: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("masks.json")).unwrap()).unwrap();
    let ref_: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("packing.json")).unwrap()).unwrap();
    let tk = Tokenizer::load(&fixture("tokenizer.json")).unwrap();
    let mut t = ChatTemplate::load(&fixture("chatml_generation.jinja")).unwrap();
    t.eos_token = "<|im_end|>".into();
    let convs: Vec<Vec<Message>> = serde_json::from_value(masks["conversations"].clone()).unwrap();
    let encoded: Vec<_> = convs.iter().map(|c| encode(&t, &tk, c, LossOn::Assistant).unwrap()).collect();
    let rows: Vec<_> = encoded.iter().collect();
    let ids: Vec<Vec<u32>> = serde_json::from_value(ref_["input_ids"].clone()).unwrap();
    let labels: Vec<Vec<i64>> = serde_json::from_value(ref_["labels"].clone()).unwrap();
    let positions: Vec<Vec<u32>> = serde_json::from_value(ref_["position_ids"].clone()).unwrap();
    let allowed: Vec<Vec<u8>> = serde_json::from_value(ref_["allowed"].clone()).unwrap();
    let total = ids[0].len();
    let b = packed(&rows, total, 0);
    assert_eq!((b.batch_size, b.seq_len), (1, total), "all three fit one row of {total}");
    assert_eq!(b.inputs, ids[0], "packed ids differ from TRL's");
    let segs = b.segments.clone().unwrap();
    assert!(segs.iter().all(|&s| s != PAD_SEGMENT));
    assert_eq!(segment_positions(&segs, b.seq_len), positions[0], "position ids differ from TRL's");
    for k in 0..total {
        let want = labels[0].get(k + 1).copied().unwrap_or(-100);
        assert_eq!(if want == -100 { IGNORE } else { want as u32 }, b.targets[k], "target at {k}");
    }
    // The attention jielong's models apply (same segment, key not after query) is transformers'.
    let n_allowed: usize = allowed.iter().flatten().map(|&a| a as usize).sum();
    assert_eq!(n_allowed, [34usize, 68, 49].iter().map(|l| l * (l + 1) / 2).sum::<usize>(), "the reference mask is block-diagonal");
    for q in 0..total {
        for k in 0..total {
            let ours = k <= q && segs[k] == segs[q];
            assert_eq!(ours, allowed[q][k] == 1, "query {q} key {k}");
        }
    }
}
