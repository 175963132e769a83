//! `family = "seq2seq"`: a recurrent encoder-decoder (Sutskever et al. 2014; Cho et al. 2014)
//! with optional attention over the encoder's outputs (Bahdanau et al. 2015; Luong et al.
//! 2015). Source and target share one tokenizer and one embedding table.
//!
//! ```text
//! encoder   h_1 … h_S = BiRNN(E[x_1 … x_S])             (width He = dirs·hidden)
//! summary   z = [→h_S ; ←h_1] of the top layer            (b, He)
//! decoder   s_0 = tanh(W_b z + b_b) in every layer (c_0 = 0), s_t = RNN(s_{t−1}, E[y_{t−1}])
//! context   c_t = z                                       attention = "none"
//!           c_t = Σ_j α_tj h_j, α_t = softmax_j(score(s_t, h_j)) over the real source positions
//!               additive: v·tanh(W_q s_t + W_k h_j)       (Bahdanau's score)
//!               dot:      s_t·h_j                          (Luong; needs He = hidden)
//!               general:  s_t·W_a h_j                      (Luong)
//! output    h̃_t = tanh(W_c [c_t ; s_t]),  p(y_t) = softmax(E h̃_t)  (tied; or W_o h̃_t)
//! ```
//! Every kind uses the same placement (Luong's global attention: the score reads the decoder
//! state after step t), so the four differ only in where the context comes from and how it is
//! scored; "none" gets the same fixed vector z at every step, the original encoder-decoder's
//! bottleneck. Training is teacher forcing: the decoder reads the reference target shifted by
//! one (`<|endoftext|>` first), and the loss is the mean cross-entropy over the real target
//! positions (the end token included).
//!
//! Parameter names (PyTorch's for the recurrent parts, `tests/fixtures/seq2seq` has a torch
//! reference that uses them):
//! ```text
//! embed.weight (V, e) · encoder.weight_ih_l{k}[_reverse] … · decoder.weight_ih_l{k} …
//! bridge.weight (H, He), bridge.bias (H) · combine.weight (out, He + H)
//! attn.weight (H, He) [general] · attn.query.weight (H, H), attn.key.weight (H, He),
//! attn.v.weight (1, H) [additive] · out.weight (V, H) [untied only]
//! ```

use crate::family::{Family, FamilyConfig};
use crate::recurrent::Cell;
use crate::rnn_encoder::{length_mask, run_direction, DirWeights, RecurrentEncoder};
use crate::state::{downcast, DecodeState};
use crate::{CausalLm, ForwardOpts, Model, ModelConfig, Seq2seq};
use candle_core::{Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use jielong_core::Error;
use jielong_nn::{linear, Dropout, MaskSource, WeightLayout};

/// `model.attention` of a seq2seq model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attention {
    /// The fixed context vector: the encoder's final state at every step.
    None,
    /// Bahdanau's score v·tanh(W_q s + W_k h).
    #[default]
    Additive,
    /// Luong's s·h.
    Dot,
    /// Luong's s·W h.
    General,
}

impl Attention {
    pub fn name(self) -> &'static str {
        match self {
            Attention::None => "none",
            Attention::Additive => "additive",
            Attention::Dot => "dot",
            Attention::General => "general",
        }
    }
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seq2seqConfig {
    /// Size of the shared token table (0: take it from the tokenizer).
    #[serde(default)]
    pub vocab_size: usize,
    /// The recurrent cell of encoder and decoder: "rnn", "lstm" or "gru".
    #[serde(default)]
    pub cell: Cell,
    /// Size of the decoder state and of each encoder direction's state.
    pub hidden_size: usize,
    /// Size of the token embedding (0 or absent: hidden_size).
    #[serde(default)]
    pub n_embd: usize,
    #[serde(default = "one")]
    pub enc_layers: usize,
    #[serde(default = "one")]
    pub dec_layers: usize,
    /// Read the source in both directions.
    #[serde(default)]
    pub bidirectional: bool,
    #[serde(default)]
    pub attention: Attention,
    /// Longest source and target in tokens that training reads (longer pairs are an error),
    /// and the longest output decoding writes.
    pub max_seq_len: usize,
    /// Dropout on the embeddings, between encoder layers and on h̃ (training only).
    #[serde(default)]
    pub dropout: f64,
    /// The output layer is the embedding table (h̃ has n_embd values).
    #[serde(default = "yes")]
    pub tie_embeddings: bool,
}

pub const FAMILY: Family = Family {
    name: "seq2seq",
    about: "recurrent encoder-decoder (rnn/lstm/gru, optionally bidirectional) with none/additive/dot/general attention",
    parse: |v| {
        let mut cfg: Seq2seqConfig = serde_json::from_value(v).map_err(|e| e.to_string())?;
        cfg.resolve();
        Ok(Box::new(cfg))
    },
    preset: |n| Seq2seqConfig::preset(n).map(|c| Box::new(c) as Box<dyn FamilyConfig>),
    hf: None,
};

impl Seq2seqConfig {
    /// `tiny` (a bidirectional LSTM with additive attention, seconds per hundred steps),
    /// `small`, `medium`.
    pub fn preset(name: &str) -> Option<Self> {
        let make = |hidden_size, layers, max_seq_len, vocab_size| Self {
            vocab_size,
            cell: Cell::Lstm,
            hidden_size,
            n_embd: hidden_size,
            enc_layers: layers,
            dec_layers: layers,
            bidirectional: true,
            attention: Attention::Additive,
            max_seq_len,
            dropout: 0.0,
            tie_embeddings: true,
        };
        match name {
            "tiny" => Some(make(64, 1, 64, 0)),
            "small" => Some(make(256, 2, 64, 4096)),
            "medium" => Some(make(512, 2, 128, 8192)),
            _ => None,
        }
    }

    pub fn resolve(&mut self) {
        if self.n_embd == 0 {
            self.n_embd = self.hidden_size;
        }
    }

    /// Width of the encoder's outputs.
    pub fn enc_width(&self) -> usize {
        self.hidden_size * if self.bidirectional { 2 } else { 1 }
    }

    /// Rows of the decoder state per sequence.
    pub fn n_state(&self) -> usize {
        self.dec_layers * if self.cell == Cell::Lstm { 2 } else { 1 }
    }

    fn out_dim(&self) -> usize {
        if self.tie_embeddings {
            self.n_embd
        } else {
            self.hidden_size
        }
    }

    fn body_params(&self) -> usize {
        let (h, he, e) = (self.hidden_size, self.enc_width(), self.n_embd);
        let enc = RecurrentEncoder::n_params(self.cell, e, h, self.enc_layers, self.bidirectional);
        let dec = RecurrentEncoder::n_params(self.cell, e, h, self.dec_layers, false);
        let attn = match self.attention {
            Attention::None | Attention::Dot => 0,
            Attention::General => h * he,
            Attention::Additive => h * h + h * he + h,
        };
        enc + dec + h * he + h + attn + self.out_dim() * (he + h)
    }
}

impl FamilyConfig for Seq2seqConfig {
    fn family(&self) -> &'static str {
        "seq2seq"
    }
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    fn set_vocab_size(&mut self, vocab_size: usize) {
        self.vocab_size = vocab_size;
    }
    fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }
    fn validate(&self) -> std::result::Result<(), Error> {
        let bad = |m: String| Err(Error::input(m));
        if self.hidden_size == 0 {
            return bad("model.hidden_size must be at least 1 (the size of the encoder and decoder states), e.g. 128".into());
        }
        if self.enc_layers == 0 || self.dec_layers == 0 {
            return bad("model.enc_layers and model.dec_layers must be at least 1".into());
        }
        if self.max_seq_len == 0 {
            return bad("model.max_seq_len must be at least 1 (the longest source or target in tokens)".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("model.dropout = {} must be in [0, 1)", self.dropout));
        }
        if self.attention == Attention::Dot && self.enc_width() != self.hidden_size {
            return bad(format!(
                "model.attention = \"dot\" scores s·h, so the encoder's outputs ({}, bidirectional) must be as wide as the decoder state ({}): use attention = \"general\" or bidirectional = false",
                self.enc_width(),
                self.hidden_size
            ));
        }
        if self.vocab_size == 0 {
            return bad("model.vocab_size is 0: set it, or let `jielong train` take it from the tokenizer".into());
        }
        Ok(())
    }
    fn n_params(&self) -> usize {
        let mut n = self.vocab_size * self.n_embd + self.body_params();
        if !self.tie_embeddings {
            n += self.vocab_size * self.hidden_size;
        }
        n
    }
    fn flops_per_token(&self, _seq_len: usize) -> f64 {
        6.0 * (self.body_params() + self.vocab_size * self.out_dim()) as f64
    }
    fn describe(&self) -> String {
        let bi = if self.bidirectional { "bidirectional " } else { "" };
        format!(
            "seq2seq · {bi}{} encoder {} layers · decoder {} layers · hidden {} · attention {}",
            self.cell.name().to_uppercase(),
            self.enc_layers,
            self.dec_layers,
            self.hidden_size,
            self.attention.name()
        )
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config serializes")
    }
    fn clone_box(&self) -> Box<dyn FamilyConfig> {
        Box::new(self.clone())
    }
    fn build(&self, vb: VarBuilder) -> std::result::Result<Box<dyn Model>, Error> {
        Ok(Box::new(Seq2seqModel::new(self, vb)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn token_embedding(&self) -> Option<(&'static str, usize)> {
        Some(("embed.weight", self.n_embd))
    }
}

enum AttnWeights {
    None,
    Dot,
    General(Tensor),
    Additive { query: Tensor, key: Tensor, v: Tensor },
}

/// A source read by the encoder: what the decoder attends to.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// (b, S, He), zero past each source's length.
    pub outputs: Tensor,
    /// (b, S): 1.0 on real source positions; None when every source fills S.
    pub mask: Option<Tensor>,
    /// (b, He): the fixed context z.
    pub summary: Tensor,
    /// (n_state, b, hidden): the decoder's first state.
    pub init: Tensor,
}

/// What the decoder returns for a chunk of target tokens.
pub struct Decoded {
    /// (b, T, out_dim): h̃, what the output layer reads.
    pub features: Tensor,
    /// (n_state, b, hidden) after the last token.
    pub state: Tensor,
    /// (b, T, S) attention weights; None for attention = "none".
    pub weights: Option<Tensor>,
}

pub struct Seq2seqModel {
    cfg: Seq2seqConfig,
    embed: Tensor,
    encoder: RecurrentEncoder,
    decoder: Vec<DirWeights>,
    bridge_w: Tensor,
    bridge_b: Tensor,
    attn: AttnWeights,
    combine: Tensor,
    head: Tensor,
    dropout: Dropout,
}

impl Seq2seqModel {
    /// Build through `vb`: recurrent weights as PyTorch's U(−1/√hidden, 1/√hidden), the rest
    /// U(−0.1, 0.1).
    pub fn new(cfg: &Seq2seqConfig, vb: VarBuilder) -> std::result::Result<Self, Error> {
        let mut cfg = cfg.clone();
        cfg.resolve();
        cfg.validate()?;
        let (h, he, e, v) = (cfg.hidden_size, cfg.enc_width(), cfg.n_embd, cfg.vocab_size);
        let uni = |a: f64| Init::Uniform { lo: -a, up: a };
        let embed = vb.get_with_hints((v, e), "embed.weight", uni(0.1))?;
        let encoder = RecurrentEncoder::new(vb.pp("encoder"), cfg.cell, e, h, cfg.enc_layers, cfg.bidirectional)?;
        let vd = vb.pp("decoder");
        let decoder = (0..cfg.dec_layers).map(|l| DirWeights::new(&vd, cfg.cell, if l == 0 { e } else { h }, h, l, "")).collect::<Result<Vec<_>>>()?;
        let bridge_w = vb.get_with_hints((h, he), "bridge.weight", uni(0.1))?;
        let bridge_b = vb.get_with_hints(h, "bridge.bias", uni(0.1))?;
        let va = vb.pp("attn");
        let attn = match cfg.attention {
            Attention::None => AttnWeights::None,
            Attention::Dot => AttnWeights::Dot,
            Attention::General => AttnWeights::General(vb.get_with_hints((h, he), "attn.weight", uni(0.1))?),
            Attention::Additive => AttnWeights::Additive {
                query: va.get_with_hints((h, h), "query.weight", uni(0.1))?,
                key: va.get_with_hints((h, he), "key.weight", uni(0.1))?,
                v: va.get_with_hints((1, h), "v.weight", uni(0.1))?,
            },
        };
        let combine = vb.get_with_hints((cfg.out_dim(), he + h), "combine.weight", uni(0.1))?;
        let head = if cfg.tie_embeddings { embed.clone() } else { vb.get_with_hints((v, h), "out.weight", uni(0.1))? };
        Ok(Self { dropout: Dropout { p: cfg.dropout as f32 }, cfg, embed, encoder, decoder, bridge_w, bridge_b, attn, combine, head })
    }

    pub fn config(&self) -> &Seq2seqConfig {
        &self.cfg
    }

    fn drop(&self, xs: &Tensor, site: u64, opts: ForwardOpts) -> Result<Tensor> {
        let src = opts.dropout_seed.filter(|_| self.dropout.p > 0.0).map(|seed| MaskSource { seed, site, first_row: opts.first_row });
        self.dropout.forward(xs, src)
    }

    fn embed_ids(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        self.embed.embedding(&ids.flatten_all()?)?.reshape((b, t, self.cfg.n_embd))
    }

    /// Encode `src` (b, S) whose row r has `lens[r]` real tokens.
    pub fn encode_batch(&self, src: &Tensor, lens: &[usize], opts: ForwardOpts) -> Result<Encoded> {
        let (_, s) = src.dims2()?;
        let x = self.drop(&self.embed_ids(src)?, 0, opts)?;
        let between = |x: &Tensor, l: usize| self.drop(x, 10 + l as u64, opts);
        let out = self.encoder.forward(&x, lens, &between)?;
        let summary = self.encoder.summary(&out)?;
        let h0 = linear(&summary, &self.bridge_w, Some(&self.bridge_b), WeightLayout::OutIn)?.tanh()?;
        let mut rows = vec![h0.clone(); self.cfg.dec_layers];
        if self.cfg.cell == Cell::Lstm {
            rows.extend(vec![h0.zeros_like()?; self.cfg.dec_layers]);
        }
        let mask = if lens.iter().all(|&l| l == s) { None } else { Some(length_mask(lens, s, src.device())?) };
        Ok(Encoded { outputs: out.outputs, mask, summary, init: Tensor::stack(&rows, 0)? })
    }

    /// Attention of decoder states `q` (b, T, H) over `enc` → (context (b, T, He), weights
    /// (b, T, S)).
    pub fn attend(&self, q: &Tensor, enc: &Encoded) -> Result<(Tensor, Option<Tensor>)> {
        let keys = &enc.outputs;
        let scores = match &self.attn {
            AttnWeights::None => {
                let (b, t, _) = q.dims3()?;
                let ctx = enc.summary.unsqueeze(1)?.broadcast_as((b, t, self.cfg.enc_width()))?.contiguous()?;
                return Ok((ctx, None));
            }
            AttnWeights::Dot => q.matmul(&keys.t()?.contiguous()?)?,
            AttnWeights::General(w) => q.matmul(&linear(keys, w, None, WeightLayout::OutIn)?.t()?.contiguous()?)?,
            AttnWeights::Additive { query, key, v } => {
                let qa = linear(q, query, None, WeightLayout::OutIn)?.unsqueeze(2)?; // (b, T, 1, A)
                let ka = linear(keys, key, None, WeightLayout::OutIn)?.unsqueeze(1)?; // (b, 1, S, A)
                let e = qa.broadcast_add(&ka)?.tanh()?; // (b, T, S, A)
                linear(&e, v, None, WeightLayout::OutIn)?.squeeze(3)? // (b, T, S)
            }
        };
        let scores = match &enc.mask {
            // Padding gets −1e9: its weight underflows to exactly 0.
            Some(m) => scores.broadcast_add(&m.affine(1e9, -1e9)?.unsqueeze(1)?)?,
            None => scores,
        };
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let ctx = weights.matmul(keys)?;
        Ok((ctx, Some(weights)))
    }

    /// Run the decoder over `tgt` (b, T) from `state` (n_state, b, hidden) with teacher
    /// forcing, attending to `enc`.
    pub fn decode(&self, enc: &Encoded, tgt: &Tensor, state: &Tensor, opts: ForwardOpts) -> Result<Decoded> {
        let mut x = self.drop(&self.embed_ids(tgt)?, 1, opts)?;
        let n = self.cfg.dec_layers;
        let (mut hs, mut cs) = (Vec::with_capacity(n), Vec::new());
        for (l, w) in self.decoder.iter().enumerate() {
            let c0 = if self.cfg.cell == Cell::Lstm { Some(state.get(n + l)?) } else { None };
            let out = run_direction(self.cfg.cell, w, &x, &state.get(l)?, c0.as_ref(), None)?;
            x = out.outputs;
            hs.push(out.h);
            cs.extend(out.c);
        }
        hs.extend(cs);
        let (ctx, weights) = self.attend(&x, enc)?;
        let features = linear(&Tensor::cat(&[&ctx, &x], 2)?, &self.combine, None, WeightLayout::OutIn)?.tanh()?;
        let features = self.drop(&features, 2, opts)?;
        Ok(Decoded { features, state: Tensor::stack(&hs, 0)?, weights })
    }

    /// Logits (…, vocab) from h̃.
    pub fn logits_of(&self, features: &Tensor) -> Result<Tensor> {
        linear(features, &self.head, None, WeightLayout::OutIn)
    }

    /// Teacher-forced forward: logits (b, T, vocab) and the attention weights (b, T, S).
    pub fn forward(&self, src: &Tensor, src_lens: &[usize], tgt_in: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let enc = self.encode_batch(src, src_lens, ForwardOpts::default())?;
        let dec = self.decode(&enc, tgt_in, &enc.init, ForwardOpts::default())?;
        Ok((self.logits_of(&dec.features)?, dec.weights))
    }

    /// Feed `ids` (n, t) on top of the n sources in `enc` and the decoder `state` → logits at
    /// the last token (n, vocab) and the new state.
    fn step_chunk(&self, enc: &Encoded, ids: &Tensor, state: &Tensor) -> Result<(Tensor, Tensor)> {
        let dec = self.decode(enc, ids, state, ForwardOpts::default())?;
        let t = dec.features.dim(1)?;
        let last = dec.features.narrow(1, t - 1, 1)?.squeeze(1)?;
        Ok((self.logits_of(&last)?, dec.state))
    }
}

/// The decoding state of one sequence: its encoded source (kept for the whole decoding) and the
/// decoder's hidden state.
#[derive(Debug, Clone, Default)]
pub struct Seq2seqState {
    /// The source, batch of one. None in a state made by `new_state` (no source yet).
    pub source: Option<Encoded>,
    /// (n_state, 1, hidden); None before the first target token (then the bridge's state).
    pub state: Option<Tensor>,
    pub len: usize,
}

impl DecodeState for Seq2seqState {
    fn len(&self) -> usize {
        self.len
    }
    /// A hidden state cannot go back: it stays when asked for its own length, else it clears
    /// (the source stays).
    fn rewind(&mut self, len: usize) -> Result<usize> {
        if len < self.len {
            self.clear();
        }
        Ok(self.len)
    }
    fn clear(&mut self) {
        self.state = None;
        self.len = 0;
    }
    fn fork(&self) -> Box<dyn DecodeState> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Model for Seq2seqModel {
    fn config(&self) -> ModelConfig {
        ModelConfig::new(self.cfg.clone())
    }
    fn as_causal_lm(&self) -> Option<&dyn CausalLm> {
        None
    }
    fn as_seq2seq(&self) -> Option<&dyn Seq2seq> {
        Some(self)
    }
}

impl Seq2seq for Seq2seqModel {
    fn loss(&self, src: &Tensor, src_lens: &[usize], tgt_in: &Tensor, targets: &Tensor, tgt_lens: &[usize], opts: ForwardOpts) -> Result<Tensor> {
        let enc = self.encode_batch(src, src_lens, opts)?;
        let dec = self.decode(&enc, tgt_in, &enc.init, opts)?;
        let (b, t, c) = dec.features.dims3()?;
        if tgt_lens.len() != b || tgt_lens.iter().any(|&l| l == 0 || l > t) {
            candle_core::bail!("seq2seq loss: target lengths {tgt_lens:?} do not fit a batch of {b} targets of {t} positions");
        }
        // Only the real target positions: the mean over them, through the fused head + loss.
        let rows: Vec<u32> = tgt_lens.iter().enumerate().flat_map(|(r, &l)| (0..l).map(move |i| (r * t + i) as u32)).collect();
        let rows = Tensor::from_vec(rows, tgt_lens.iter().sum::<usize>(), src.device())?;
        let feats = dec.features.reshape((b * t, c))?.index_select(&rows, 0)?;
        let targets = targets.reshape(b * t)?.index_select(&rows, 0)?;
        jielong_nn::head_loss::linear_cross_entropy(&feats, &self.head, &targets)
    }

    fn encode(&self, src: &[u32]) -> Result<Box<dyn DecodeState>> {
        if src.is_empty() {
            candle_core::bail!("seq2seq: the source is empty");
        }
        let ids = Tensor::from_slice(src, (1, src.len()), self.embed.device())?;
        let enc = self.encode_batch(&ids, &[src.len()], ForwardOpts::default())?;
        Ok(Box::new(Seq2seqState { source: Some(enc), state: None, len: 0 }))
    }

    fn decoder(&self) -> &dyn CausalLm {
        self
    }

    fn attention_weights(&self, src: &[u32], tgt_in: &[u32]) -> Result<Option<Tensor>> {
        let dev = self.embed.device();
        let (_, w) = self.forward(&Tensor::from_slice(src, (1, src.len()), dev)?, &[src.len()], &Tensor::from_slice(tgt_in, (1, tgt_in.len()), dev)?)?;
        w.map(|w| w.squeeze(0)).transpose()
    }
}

/// The decoder as a causal LM over states that `Seq2seq::encode` made: what the shared engine
/// and beam search drive.
impl CausalLm for Seq2seqModel {
    fn logits(&self, _ids: &Tensor) -> Result<Tensor> {
        candle_core::bail!("a seq2seq decoder needs a source: decode through Seq2seq::encode and the engine's cached path")
    }
    fn loss(&self, _ids: &Tensor, _targets: &Tensor, _opts: ForwardOpts) -> Result<Tensor> {
        candle_core::bail!("a seq2seq model trains on source/target pairs (objective seq2seq), not as a causal LM")
    }
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }
    fn max_seq_len(&self) -> usize {
        self.cfg.max_seq_len
    }
    fn new_state(&self) -> Box<dyn DecodeState> {
        Box::new(Seq2seqState::default())
    }
    /// Sequences with sources of one length and chunks of one length run as one batch (the
    /// beams of one source always do); otherwise one at a time.
    fn forward_cached(&self, chunks: &[&[u32]], states: &mut [&mut dyn DecodeState]) -> Result<Tensor> {
        if chunks.len() != states.len() {
            candle_core::bail!("{} chunks but {} states", chunks.len(), states.len());
        }
        if chunks.iter().any(|c| c.is_empty()) {
            candle_core::bail!("forward_cached: a sequence was given no new tokens");
        }
        let mut states = states.iter_mut().map(|s| downcast::<Seq2seqState>(&mut **s, "seq2seq")).collect::<Result<Vec<_>>>()?;
        if states.iter().any(|s| s.source.is_none()) {
            candle_core::bail!("a seq2seq decoding state needs its source: make it with Seq2seq::encode");
        }
        let dev = self.embed.device();
        // Sources of different lengths share one pass: their outputs padded to the longest,
        // the padding masked out of the attention.
        let src_lens: Vec<usize> = states.iter().map(|s| s.source.as_ref().map(|e| e.outputs.dim(1)).transpose()).collect::<Result<Vec<_>>>()?.into_iter().map(|l| l.unwrap_or(0)).collect();
        let t = chunks[0].len();
        let groups: Vec<Vec<usize>> = if chunks.iter().all(|c| c.len() == t) { vec![(0..chunks.len()).collect()] } else { (0..chunks.len()).map(|i| vec![i]).collect() };
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let enc_of = |i: usize| states[i].source.as_ref().expect("checked above");
            let s_max = g.iter().map(|&i| src_lens[i]).max().unwrap_or(1);
            let outputs = g.iter().map(|&i| enc_of(i).outputs.pad_with_zeros(1, 0, s_max - src_lens[i])).collect::<Result<Vec<_>>>()?;
            let lens: Vec<usize> = g.iter().map(|&i| src_lens[i]).collect();
            let enc = Encoded {
                outputs: Tensor::cat(&outputs, 0)?,
                mask: if lens.iter().all(|&l| l == s_max) { None } else { Some(length_mask(&lens, s_max, dev)?) },
                summary: Tensor::cat(&g.iter().map(|&i| enc_of(i).summary.clone()).collect::<Vec<_>>(), 0)?,
                init: Tensor::zeros(1, candle_core::DType::F32, dev)?,
            };
            let init = g.iter().map(|&i| states[i].state.clone().unwrap_or_else(|| enc_of(i).init.clone())).collect::<Vec<_>>();
            let init = Tensor::cat(&init, 1)?;
            let ids: Vec<u32> = g.iter().flat_map(|&i| chunks[i].iter().copied()).collect();
            let ids = Tensor::from_vec(ids, (g.len(), chunks[g[0]].len()), dev)?;
            let (logits, last) = self.step_chunk(&enc, &ids, &init)?;
            for (k, &i) in g.iter().enumerate() {
                states[i].state = Some(last.narrow(1, k, 1)?.contiguous()?);
                states[i].len += chunks[i].len();
            }
            out.push(logits);
        }
        Tensor::cat(&out, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use jielong_nn::ParamStore;

    fn cfg(attention: Attention, bidirectional: bool, cell: Cell) -> Seq2seqConfig {
        Seq2seqConfig {
            vocab_size: 30,
            cell,
            hidden_size: 8,
            n_embd: 6,
            enc_layers: 2,
            dec_layers: 2,
            bidirectional,
            attention,
            max_seq_len: 16,
            dropout: 0.0,
            tie_embeddings: true,
        }
    }

    #[test]
    fn seq2seq_n_params_matches_the_built_model() {
        for att in [Attention::None, Attention::Additive, Attention::General] {
            for cell in [Cell::Rnn, Cell::Lstm, Cell::Gru] {
                for tie in [true, false] {
                    let mut c = cfg(att, true, cell);
                    c.tie_embeddings = tie;
                    let params = ParamStore::new(1);
                    Seq2seqModel::new(&c, params.var_builder(&Device::Cpu)).unwrap();
                    assert_eq!(params.n_params(), c.n_params(), "{att:?} {cell:?} tie {tie}");
                }
            }
        }
    }

    #[test]
    fn seq2seq_attention_sums_to_one_and_ignores_padding() {
        let dev = Device::Cpu;
        for att in [Attention::Additive, Attention::Dot, Attention::General] {
            let params = ParamStore::new(3);
            let m = Seq2seqModel::new(&cfg(att, att != Attention::Dot, Cell::Gru), params.var_builder(&dev)).unwrap();
            let src = Tensor::new(&[[3u32, 4, 5, 6, 7], [8, 9, 10, 0, 0]], &dev).unwrap();
            let tgt = Tensor::new(&[[1u32, 2, 3], [4, 5, 6]], &dev).unwrap();
            let (logits, w) = m.forward(&src, &[5, 3], &tgt).unwrap();
            let w = w.unwrap().to_vec3::<f32>().unwrap();
            for (r, row) in w.iter().enumerate() {
                for probs in row {
                    let sum: f32 = probs.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-5, "{att:?}: weights sum to {sum}");
                    if r == 1 {
                        assert_eq!(&probs[3..], &[0.0, 0.0], "{att:?}: padding gets no weight");
                    }
                }
            }
            // The padded source decodes as it would alone.
            let (alone, _) = m.forward(&Tensor::new(&[[8u32, 9, 10]], &dev).unwrap(), &[3], &tgt.narrow(0, 1, 1).unwrap()).unwrap();
            let d = (logits.narrow(0, 1, 1).unwrap() - alone).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-5, "{att:?}: {d}");
        }
    }

    #[test]
    fn seq2seq_decoding_state_equals_teacher_forcing() {
        let dev = Device::Cpu;
        for att in [Attention::None, Attention::Additive] {
            let params = ParamStore::new(5);
            let m = Seq2seqModel::new(&cfg(att, true, Cell::Lstm), params.var_builder(&dev)).unwrap();
            let src = [3u32, 4, 5, 6];
            let tgt = [1u32, 7, 8, 9];
            let (full, _) = m.forward(&Tensor::new(&[src], &dev).unwrap(), &[4], &Tensor::new(&[tgt], &dev).unwrap()).unwrap();
            let mut a = m.encode(&src).unwrap();
            let mut b = m.encode(&src).unwrap();
            m.forward_cached(&[&tgt[..2]], &mut [&mut *a]).unwrap();
            m.forward_cached(&[&tgt[..1]], &mut [&mut *b]).unwrap();
            m.forward_cached(&[&tgt[1..2]], &mut [&mut *b]).unwrap();
            for i in 2..4 {
                let l = m.forward_cached(&[&tgt[i..i + 1], &tgt[i..i + 1]], &mut [&mut *a, &mut *b]).unwrap();
                let want = full.get(0).unwrap().get(i).unwrap();
                for r in 0..2 {
                    let d = (l.get(r).unwrap() - &want).unwrap().abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
                    assert!(d < 1e-5, "{att:?} step {i} row {r}: {d}");
                }
            }
            assert!(m.forward_cached(&[&[1]], &mut [&mut *m.new_state()]).is_err(), "no source, no decoding");
            // A shorter source beside it in one pass decodes as it would alone.
            let short = [9u32, 4];
            let (alone, _) = m.forward(&Tensor::new(&[short], &dev).unwrap(), &[2], &Tensor::new(&[[1u32]], &dev).unwrap()).unwrap();
            let mut c = m.encode(&short).unwrap();
            let mut d = m.encode(&src).unwrap();
            let l = m.forward_cached(&[&[1], &[1]], &mut [&mut *d, &mut *c]).unwrap();
            let diff = (l.get(1).unwrap() - alone.get(0).unwrap().get(0).unwrap()).unwrap().abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-5, "{att:?}: padded source in a shared pass: {diff}");
        }
    }

    #[test]
    fn seq2seq_config_errors_name_the_key() {
        let e = ModelConfig::from_json(serde_json::json!({"family": "seq2seq", "hidden_size": 8, "max_seq_len": 8, "attention": "luong"})).unwrap_err();
        assert!(e.to_string().contains("unknown variant `luong`"), "{e}");
        let mut c = cfg(Attention::Dot, true, Cell::Lstm);
        assert!(c.validate().unwrap_err().to_string().contains("attention = \"general\""));
        c.attention = Attention::General;
        c.hidden_size = 0;
        assert!(c.validate().unwrap_err().to_string().contains("model.hidden_size"));
    }
}
