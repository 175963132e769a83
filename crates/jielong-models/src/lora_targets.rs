//! LoRA target shorthand: `q,k,v,o,mlp` (`jielong finetune --lora-targets`) mapped to each
//! family's own linear layers, so one setting means the same thing on every family:
//!
//! | shorthand | BERT (and MiniLM)                     | ALBERT              | GPT-2              | Llama                          |
//! |-----------|---------------------------------------|---------------------|--------------------|--------------------------------|
//! | q, k, v   | attention.self.query / key / value    | attention.query/key/value | attn.c_attn (q, k and v are one fused layer) | self_attn.q_proj / k_proj / v_proj |
//! | o         | attention.output.dense                | attention.dense     | attn.c_proj        | self_attn.o_proj               |
//! | mlp       | intermediate.dense, output.dense      | ffn, ffn_output     | mlp.c_fc, mlp.c_proj | mlp.gate_proj, up_proj, down_proj |
//!
//! The shorthand expands to the full module names of the model's sites (PEFT matches a
//! target by the whole name or its ending; BERT's feed-forward output `layer.N.output.dense`
//! has no ending that `attention.output.dense` does not share, so full names are the only
//! exact way). Anything else (module names, endings, `all-linear`) passes through unchanged.

use jielong_nn::LinearSite;

pub const SHORTHAND: [&str; 5] = ["q", "k", "v", "o", "mlp"];

/// The shorthand role of a site of `family` (`q`, `k`, `v`, `o`, `mlp`, or `qkv` for GPT-2's
/// fused projection), None for a layer the shorthand does not name.
pub fn site_role(family: &str, name: &str) -> Option<&'static str> {
    let ends = |s: &str| name.ends_with(s);
    match family {
        "bert" => Some(if ends("attention.self.query") {
            "q"
        } else if ends("attention.self.key") {
            "k"
        } else if ends("attention.self.value") {
            "v"
        } else if ends("attention.output.dense") {
            "o"
        } else if ends("intermediate.dense") || ends("output.dense") {
            "mlp"
        } else {
            return None;
        }),
        "albert" => Some(if ends("attention.query") {
            "q"
        } else if ends("attention.key") {
            "k"
        } else if ends("attention.value") {
            "v"
        } else if ends("attention.dense") {
            "o"
        } else if ends("ffn") || ends("ffn_output") {
            "mlp"
        } else {
            return None;
        }),
        "gpt" => Some(if ends("attn.c_attn") {
            "qkv"
        } else if ends("attn.c_proj") {
            "o"
        } else if ends("mlp.c_fc") || ends("mlp.c_proj") {
            "mlp"
        } else {
            return None;
        }),
        "llama" => Some(if ends("q_proj") {
            "q"
        } else if ends("k_proj") {
            "k"
        } else if ends("v_proj") {
            "v"
        } else if ends("o_proj") {
            "o"
        } else if ends("gate_proj") || ends("up_proj") || ends("down_proj") {
            "mlp"
        } else {
            return None;
        }),
        _ => None,
    }
}

/// `targets` with the shorthand expanded to the full names of `sites` (see the module docs).
/// Targets that are not shorthand are kept as they are.
pub fn expand_targets(family: &str, targets: &[String], sites: &[LinearSite]) -> Vec<String> {
    let wanted: Vec<&str> = targets.iter().map(String::as_str).filter(|t| SHORTHAND.contains(t)).collect();
    let mut out: Vec<String> = targets.iter().filter(|t| !SHORTHAND.contains(&t.as_str())).cloned().collect();
    for s in sites {
        let hit = match site_role(family, &s.name) {
            Some("qkv") => wanted.iter().any(|w| matches!(*w, "q" | "k" | "v")),
            Some(role) => wanted.contains(&role),
            None => false,
        };
        if hit && !out.contains(&s.name) {
            out.push(s.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jielong_nn::WeightLayout;

    #[test]
    fn lora_targets_shorthand_separates_bert_attention_output_from_ffn_output() {
        let site = |n: &str| LinearSite { name: n.into(), n_in: 4, n_out: 4, layout: WeightLayout::OutIn };
        let sites: Vec<LinearSite> = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"]
            .iter()
            .map(|n| site(&format!("bert.encoder.layer.0.{n}")))
            .collect();
        let t = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(expand_targets("bert", &t(&["o"]), &sites), t(&["bert.encoder.layer.0.attention.output.dense"]));
        assert_eq!(expand_targets("bert", &t(&["mlp"]), &sites), t(&["bert.encoder.layer.0.intermediate.dense", "bert.encoder.layer.0.output.dense"]));
        assert_eq!(expand_targets("bert", &t(&["q", "value"]), &sites), t(&["value", "bert.encoder.layer.0.attention.self.query"]));
        let gpt = vec![site("transformer.h.0.attn.c_attn"), site("transformer.h.0.attn.c_proj")];
        assert_eq!(expand_targets("gpt", &t(&["v"]), &gpt), t(&["transformer.h.0.attn.c_attn"]));
    }
}
