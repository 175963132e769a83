//! Recurrent language models: Elman RNN (tanh), LSTM and GRU, as causal LMs on the same shards
//! and tokenizer as the GPT. Three registry entries ("rnn", "lstm", "gru") share one config
//! type; the family name picks the cell.
//!
//! The cells follow PyTorch's `nn.RNN` / `nn.LSTM` / `nn.GRU` exactly (gate order and the two
//! bias vectors), and the weights carry the names of PyTorch's `word_language_model` example
//! (`encoder`, `rnn`, `decoder`), so a state dict of `torch.nn.LSTM` loads unchanged:
//! ```text
//! encoder.weight            (vocab_size, n_embd)
//! rnn.weight_ih_l{k}        (G·hidden, in_k)     in_0 = n_embd, in_k = hidden_size
//! rnn.weight_hh_l{k}        (G·hidden, hidden)
//! rnn.bias_ih_l{k}          (G·hidden)
//! rnn.bias_hh_l{k}          (G·hidden)
//! proj.weight               (n_embd, hidden)     tied output with n_embd ≠ hidden_size only
//! decoder.weight            (vocab_size, hidden) untied output only
//! ```
//! G = 1 (RNN), 4 (LSTM: gates i, f, g, o), 3 (GRU: gates r, z, n).
//!
//! The input side of every gate is one matrix product over all time steps of a layer
//! (`x · W_ihᵀ + b_ih` for the whole (b, t) at once); only `h · W_hhᵀ` runs step by step. On
//! the CPU in f32 the steps run as one fused kernel with its own backward
//! (`jielong_nn::recurrent_scan`: one small product and one pass over the gates per step); the
//! composed cells below (`lstm_step`, …) are the reference path it is tested against.
//!
//! State: per layer the hidden state h (b, hidden), and for the LSTM the cell state c. As one
//! tensor (what sequential batching carries and a checkpoint saves) it is (n_state, b, hidden)
//! with n_state = n_layer (RNN, GRU) or 2·n_layer (LSTM: h of every layer, then c of every
//! layer, as PyTorch's `(h_n, c_n)`).

use crate::family::{Family, FamilyConfig};
use crate::rnn_encoder::{run_direction, DirWeights};
use crate::state::{downcast, DecodeState};
use crate::{CausalLm, ForwardOpts, Model, ModelConfig, RecurrentLm};
use candle_core::{DType, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use jielong_core::Error;
use jielong_nn::{linear, Dropout, MaskSource, WeightLayout};

/// The recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    /// Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh).
    Rnn,
    #[default]
    Lstm,
    Gru,
}

impl Cell {
    pub fn name(self) -> &'static str {
        match self {
            Cell::Rnn => "rnn",
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }

    /// The fused kernel's name for this cell.
    pub fn scan(self) -> jielong_nn::ScanCell {
        match self {
            Cell::Rnn => jielong_nn::ScanCell::Rnn,
            Cell::Lstm => jielong_nn::ScanCell::Lstm,
            Cell::Gru => jielong_nn::ScanCell::Gru,
        }
    }

    /// Gate blocks in the weight matrices.
    pub fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurrentConfig {
    /// Which cell; set by the family name, not a key of its own.
    #[serde(skip)]
    pub cell: Cell,
    /// Size of the token table. 0 in a config file means "take it from the tokenizer".
    #[serde(default)]
    pub vocab_size: usize,
    pub n_layer: usize,
    /// Size of h (and c) in every layer.
    pub hidden_size: usize,
    /// Size of the token embedding. 0 or absent: hidden_size.
    #[serde(default)]
    pub n_embd: usize,
    /// The training window (tokens per sequence of a batch; the truncation length of
    /// backpropagation through time). Decoding is not limited by it.
    pub max_seq_len: usize,
    /// Dropout on the embeddings, between layers and before the output (training only).
    #[serde(default)]
    pub dropout: f64,
    /// Share the embedding with the output layer (through a projection hidden → n_embd when
    /// the two sizes differ).
    #[serde(default)]
    pub tie_embeddings: bool,
}

fn entry_parse(cell: Cell, v: serde_json::Value) -> std::result::Result<Box<dyn FamilyConfig>, String> {
    let mut cfg: RecurrentConfig = serde_json::from_value(v).map_err(|e| e.to_string())?;
    cfg.cell = cell;
    cfg.resolve();
    Ok(Box::new(cfg))
}

fn entry_preset(cell: Cell, name: &str) -> Option<Box<dyn FamilyConfig>> {
    RecurrentConfig::preset(cell, name).map(|c| Box::new(c) as Box<dyn FamilyConfig>)
}

/// The registry entries.
pub const RNN_FAMILY: Family = Family {
    name: "rnn",
    about: "Elman recurrent network (tanh cell) language model, PyTorch nn.RNN's weights",
    parse: |v| entry_parse(Cell::Rnn, v),
    preset: |n| entry_preset(Cell::Rnn, n),
    hf: None,
};
pub const LSTM_FAMILY: Family = Family {
    name: "lstm",
    about: "LSTM language model (input, forget, cell, output gates), PyTorch nn.LSTM's weights",
    parse: |v| entry_parse(Cell::Lstm, v),
    preset: |n| entry_preset(Cell::Lstm, n),
    hf: None,
};
pub const GRU_FAMILY: Family = Family {
    name: "gru",
    about: "GRU language model (reset and update gates), PyTorch nn.GRU's weights",
    parse: |v| entry_parse(Cell::Gru, v),
    preset: |n| entry_preset(Cell::Gru, n),
    hf: None,
};

impl RecurrentConfig {
    /// `tiny` (what quickstart-sized runs train), `small` and `medium` (the bench models).
    pub fn preset(cell: Cell, name: &str) -> Option<Self> {
        let make = |n_layer, hidden_size, max_seq_len, vocab_size, dropout| Self {
            cell,
            vocab_size,
            n_layer,
            hidden_size,
            n_embd: hidden_size,
            max_seq_len,
            dropout,
            tie_embeddings: true,
        };
        match name {
            "tiny" => Some(make(1, 128, 64, 0, 0.1)),
            "small" => Some(make(2, 256, 64, 4096, 0.0)),
            "medium" => Some(make(2, 512, 128, 8192, 0.0)),
            _ => None,
        }
    }

    /// Fill defaults that depend on other keys (n_embd 0 → hidden_size).
    pub fn resolve(&mut self) {
        if self.n_embd == 0 {
            self.n_embd = self.hidden_size;
        }
    }

    /// (n_state, hidden): the carried state's rows per sequence.
    pub fn n_state(&self) -> usize {
        if self.cell == Cell::Lstm {
            2 * self.n_layer
        } else {
            self.n_layer
        }
    }

    fn needs_proj(&self) -> bool {
        self.tie_embeddings && self.n_embd != self.hidden_size
    }

    /// Width of the vector the output layer reads.
    fn out_dim(&self) -> usize {
        if self.tie_embeddings {
            self.n_embd
        } else {
            self.hidden_size
        }
    }

    fn layer_params(&self) -> usize {
        let (g, h) = (self.cell.gates(), self.hidden_size);
        (0..self.n_layer).map(|k| g * h * (if k == 0 { self.n_embd } else { h } + h + 2)).sum()
    }
}

impl FamilyConfig for RecurrentConfig {
    fn family(&self) -> &'static str {
        self.cell.name()
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
        if self.n_layer == 0 {
            return bad("model.n_layer must be at least 1".into());
        }
        if self.hidden_size == 0 {
            return bad(format!("model.hidden_size must be at least 1 (the size of the {} state), e.g. 256", self.cell.name()));
        }
        if self.max_seq_len == 0 {
            return bad("model.max_seq_len must be at least 1 (the training window in tokens)".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("model.dropout = {} must be in [0, 1)", self.dropout));
        }
        if self.vocab_size == 0 {
            return bad("model.vocab_size is 0: set it, or let `jielong train` take it from the tokenizer".into());
        }
        Ok(())
    }
    fn n_params(&self) -> usize {
        let mut n = self.vocab_size * self.n_embd + self.layer_params();
        if self.needs_proj() {
            n += self.n_embd * self.hidden_size;
        }
        if !self.tie_embeddings {
            n += self.vocab_size * self.hidden_size;
        }
        n
    }
    fn flops_per_token(&self, _seq_len: usize) -> f64 {
        let matmul = self.layer_params() + if self.needs_proj() { self.n_embd * self.hidden_size } else { 0 } + self.vocab_size * self.out_dim();
        6.0 * matmul as f64
    }
    fn describe(&self) -> String {
        let tie = if self.tie_embeddings { " · tied output" } else { "" };
        format!("{} · {} layers · hidden {} · n_embd {}{tie}", self.cell.name().to_uppercase(), self.n_layer, self.hidden_size, self.n_embd)
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config serializes")
    }
    fn clone_box(&self) -> Box<dyn FamilyConfig> {
        Box::new(self.clone())
    }
    fn build(&self, vb: VarBuilder) -> std::result::Result<Box<dyn Model>, Error> {
        Ok(Box::new(Recurrent::new(self, vb)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// One step of an Elman cell: `xg` = x·W_ihᵀ + b_ih (b, hidden) → h' (b, hidden).
pub fn rnn_step(xg: &Tensor, h: &Tensor, w_hh: &Tensor, b_hh: &Tensor) -> Result<Tensor> {
    (xg + linear(h, w_hh, Some(b_hh), WeightLayout::OutIn)?)?.tanh()
}

/// One LSTM step: `xg` = x·W_ihᵀ + b_ih (b, 4·hidden), gates in PyTorch's order i, f, g, o →
/// (h', c').
pub fn lstm_step(xg: &Tensor, h: &Tensor, c: &Tensor, w_hh: &Tensor, b_hh: &Tensor) -> Result<(Tensor, Tensor)> {
    let hs = h.dim(D::Minus1)?;
    let g = (xg + linear(h, w_hh, Some(b_hh), WeightLayout::OutIn)?)?;
    let ifo_i = candle_nn::ops::sigmoid(&g.narrow(D::Minus1, 0, hs)?)?;
    let ifo_f = candle_nn::ops::sigmoid(&g.narrow(D::Minus1, hs, hs)?)?;
    let cand = g.narrow(D::Minus1, 2 * hs, hs)?.tanh()?;
    let ifo_o = candle_nn::ops::sigmoid(&g.narrow(D::Minus1, 3 * hs, hs)?)?;
    let c2 = ((ifo_f * c)? + (ifo_i * cand)?)?;
    let h2 = (ifo_o * c2.tanh()?)?;
    Ok((h2, c2))
}

/// One GRU step (PyTorch's: the reset gate multiplies W_hn·h + b_hn): `xg` = x·W_ihᵀ + b_ih
/// (b, 3·hidden), gates r, z, n → h' = (1 − z)·n + z·h.
pub fn gru_step(xg: &Tensor, h: &Tensor, w_hh: &Tensor, b_hh: &Tensor) -> Result<Tensor> {
    let hs = h.dim(D::Minus1)?;
    let hg = linear(h, w_hh, Some(b_hh), WeightLayout::OutIn)?;
    let part = |t: &Tensor, k: usize| t.narrow(D::Minus1, k * hs, hs);
    let r = candle_nn::ops::sigmoid(&(part(xg, 0)? + part(&hg, 0)?)?)?;
    let z = candle_nn::ops::sigmoid(&(part(xg, 1)? + part(&hg, 1)?)?)?;
    let n = (part(xg, 2)? + (r * part(&hg, 2)?)?)?.tanh()?;
    // (1 − z)·n + z·h = n + z·(h − n)
    &n + (z * (h - &n)?)?
}

pub struct Recurrent {
    cfg: RecurrentConfig,
    embed: Tensor,
    layers: Vec<DirWeights>,
    proj: Option<Tensor>,
    /// (vocab_size, out_dim): the embedding itself when tied.
    head: Tensor,
    dropout: Dropout,
}

impl Recurrent {
    /// Build the model through `vb`. Init as PyTorch: recurrent weights and biases
    /// U(−1/√hidden, 1/√hidden); embedding, projection and output U(−0.1, 0.1).
    pub fn new(cfg: &RecurrentConfig, vb: VarBuilder) -> std::result::Result<Self, Error> {
        let mut cfg = cfg.clone();
        cfg.resolve();
        cfg.validate()?;
        let (h, e) = (cfg.hidden_size, cfg.n_embd);
        let uni = |a: f64| Init::Uniform { lo: -a, up: a };
        let embed = vb.get_with_hints((cfg.vocab_size, e), "encoder.weight", uni(0.1))?;
        let vr = vb.pp("rnn");
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let n_in = if l == 0 { e } else { h };
            layers.push(DirWeights::new(&vr, cfg.cell, n_in, h, l, "")?);
        }
        let proj = if cfg.needs_proj() { Some(vb.get_with_hints((e, h), "proj.weight", uni(0.1))?) } else { None };
        let head = if cfg.tie_embeddings { embed.clone() } else { vb.get_with_hints((cfg.vocab_size, h), "decoder.weight", uni(0.1))? };
        Ok(Self { embed, layers, proj, head, dropout: Dropout { p: cfg.dropout as f32 }, cfg })
    }

    pub fn config(&self) -> &RecurrentConfig {
        &self.cfg
    }

    /// A zero state for `b` sequences, (n_state, b, hidden).
    pub fn zero_state(&self, b: usize) -> Result<Tensor> {
        Tensor::zeros((self.cfg.n_state(), b, self.cfg.hidden_size), DType::F32, self.embed.device())
    }

    /// `ids` (b, t) from state `init` ((n_state, b, hidden); None: zeros) → the vectors the
    /// output layer reads (b, t, out_dim) and the state after the last token.
    pub fn hidden(&self, ids: &Tensor, init: Option<&Tensor>, opts: ForwardOpts) -> Result<(Tensor, Tensor)> {
        let (b, t) = ids.dims2()?;
        let n_layer = self.cfg.n_layer;
        let drop = |site: u64| opts.dropout_seed.filter(|_| self.dropout.p > 0.0).map(|seed| MaskSource { seed, site, first_row: opts.first_row });
        let state = match init {
            Some(s) => {
                let want = (self.cfg.n_state(), b, self.cfg.hidden_size);
                if s.dims3()? != want {
                    candle_core::bail!("recurrent state of shape {:?}, expected {want:?}", s.dims());
                }
                s.clone()
            }
            None => self.zero_state(b)?,
        };
        let emb = self.embed.embedding(&ids.flatten_all()?)?.reshape((b, t, self.cfg.n_embd))?;
        let mut xs = self.dropout.forward(&emb, drop(0))?;
        let mut hs_out = Vec::with_capacity(n_layer);
        let mut cs_out = Vec::with_capacity(n_layer);
        for (l, layer) in self.layers.iter().enumerate() {
            let c0 = if self.cfg.cell == Cell::Lstm { Some(state.get(n_layer + l)?) } else { None };
            let out = run_direction(self.cfg.cell, layer, &xs, &state.get(l)?, c0.as_ref(), None)?;
            let (h, c) = (out.h, out.c);
            xs = out.outputs; // (b, t, hidden)
            xs = self.dropout.forward(&xs, drop(1 + l as u64))?;
            hs_out.push(h);
            if let Some(c) = c {
                cs_out.push(c);
            }
        }
        hs_out.extend(cs_out);
        let last = Tensor::stack(&hs_out, 0)?;
        if let Some(p) = &self.proj {
            xs = linear(&xs, p, None, WeightLayout::OutIn)?;
        }
        Ok((xs, last))
    }

    /// Mean next-token cross-entropy from state `init`, the output layer fused with the loss,
    /// and the state after the batch.
    pub fn loss_from(&self, ids: &Tensor, targets: &Tensor, init: Option<&Tensor>, opts: ForwardOpts) -> Result<(Tensor, Tensor)> {
        let (xs, last) = self.hidden(ids, init, opts)?;
        let (b, t, c) = xs.dims3()?;
        let loss = jielong_nn::head_loss::linear_cross_entropy(&xs.reshape((b * t, c))?, &self.head, &targets.reshape(b * t)?)?;
        Ok((loss, last))
    }

    /// `ids` (b, t) → logits (b, t, vocab_size), from a zero state.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (xs, _) = self.hidden(ids, None, ForwardOpts::default())?;
        linear(&xs, &self.head, None, WeightLayout::OutIn)
    }

    /// Feed `ids` (n, t) on top of `state` → logits at the last token (n, vocab) and the new state.
    fn step_chunk(&self, ids: &Tensor, state: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (xs, last) = self.hidden(ids, state, ForwardOpts::default())?;
        let t = xs.dim(1)?;
        let xs = xs.narrow(1, t - 1, 1)?.squeeze(1)?;
        Ok((linear(&xs, &self.head, None, WeightLayout::OutIn)?, last))
    }
}

/// The decoding state of one sequence: (n_state, 1, hidden), or None before the first token.
#[derive(Debug, Clone, Default)]
pub struct RecurrentState {
    pub state: Option<Tensor>,
    pub len: usize,
}

impl DecodeState for RecurrentState {
    fn len(&self) -> usize {
        self.len
    }
    /// A hidden state cannot go back: it stays when asked for its own length, else it clears.
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

impl Model for Recurrent {
    fn config(&self) -> ModelConfig {
        ModelConfig::new(self.cfg.clone())
    }
    fn as_causal_lm(&self) -> Option<&dyn CausalLm> {
        Some(self)
    }
    fn as_recurrent(&self) -> Option<&dyn RecurrentLm> {
        Some(self)
    }
}

impl RecurrentLm for Recurrent {
    fn state_shape(&self, batch: usize) -> (usize, usize, usize) {
        (self.cfg.n_state(), batch, self.cfg.hidden_size)
    }
    fn loss_carried(&self, ids: &Tensor, targets: &Tensor, init: Option<&Tensor>, opts: ForwardOpts) -> Result<(Tensor, Tensor)> {
        let (loss, last) = self.loss_from(ids, targets, init, opts)?;
        Ok((loss, last.detach()))
    }
}

impl CausalLm for Recurrent {
    fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward(ids)
    }
    fn loss(&self, ids: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        Ok(self.loss_from(ids, targets, None, opts)?.0)
    }
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }
    fn max_seq_len(&self) -> usize {
        self.cfg.max_seq_len
    }
    fn new_state(&self) -> Box<dyn DecodeState> {
        Box::new(RecurrentState::default())
    }
    /// Sequences whose chunks have one length run as one batch; otherwise one at a time.
    fn forward_cached(&self, chunks: &[&[u32]], states: &mut [&mut dyn DecodeState]) -> Result<Tensor> {
        if chunks.len() != states.len() {
            candle_core::bail!("{} chunks but {} states", chunks.len(), states.len());
        }
        if chunks.iter().any(|c| c.is_empty()) {
            candle_core::bail!("forward_cached: a sequence was given no new tokens");
        }
        let family = self.cfg.cell.name();
        let mut states = states.iter_mut().map(|s| downcast::<RecurrentState>(&mut **s, family)).collect::<Result<Vec<_>>>()?;
        let dev = self.embed.device();
        let t = chunks[0].len();
        if chunks.iter().all(|c| c.len() == t) {
            let n = chunks.len();
            let ids: Vec<u32> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            let ids = Tensor::from_vec(ids, (n, t), dev)?;
            let init = states.iter().map(|s| match &s.state {
                Some(st) => Ok(st.clone()),
                None => Tensor::zeros((self.cfg.n_state(), 1, self.cfg.hidden_size), DType::F32, dev),
            }).collect::<Result<Vec<_>>>()?;
            let init = Tensor::cat(&init, 1)?;
            let (logits, last) = self.step_chunk(&ids, Some(&init))?;
            for (i, s) in states.iter_mut().enumerate() {
                s.state = Some(last.narrow(1, i, 1)?.contiguous()?);
                s.len += t;
            }
            return Ok(logits);
        }
        let mut out = Vec::with_capacity(chunks.len());
        for (chunk, s) in chunks.iter().zip(states.iter_mut()) {
            let ids = Tensor::from_slice(chunk, (1, chunk.len()), dev)?;
            let (logits, last) = self.step_chunk(&ids, s.state.as_ref())?;
            s.state = Some(last);
            s.len += chunk.len();
            out.push(logits);
        }
        Tensor::cat(&out, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use jielong_nn::ParamStore;

    fn tiny(cell: Cell, tie: bool, n_embd: usize) -> RecurrentConfig {
        RecurrentConfig { cell, vocab_size: 40, n_layer: 2, hidden_size: 16, n_embd, max_seq_len: 12, dropout: 0.0, tie_embeddings: tie }
    }

    #[test]
    fn recurrent_n_params_matches_the_built_model() {
        for cell in [Cell::Rnn, Cell::Lstm, Cell::Gru] {
            for (tie, e) in [(true, 16), (true, 8), (false, 8)] {
                let cfg = tiny(cell, tie, e);
                let params = ParamStore::new(1);
                Recurrent::new(&cfg, params.var_builder(&Device::Cpu)).unwrap();
                assert_eq!(params.n_params(), cfg.n_params(), "{cell:?} tie {tie} n_embd {e}");
            }
        }
    }

    #[test]
    fn recurrent_decoding_state_equals_the_full_forward() {
        for cell in [Cell::Rnn, Cell::Lstm, Cell::Gru] {
            let params = ParamStore::new(2);
            let m = Recurrent::new(&tiny(cell, true, 8), params.var_builder(&Device::Cpu)).unwrap();
            let ids = [3u32, 7, 1, 9, 22, 5];
            let full = m.forward(&Tensor::new(&[ids], &Device::Cpu).unwrap()).unwrap().squeeze(0).unwrap();
            // Prefix of 4 in one chunk, then one token at a time, beside a second sequence.
            let mut a = m.new_state();
            let mut b = m.new_state();
            m.forward_cached(&[&ids[..4]], &mut [&mut *a]).unwrap();
            for (i, tok) in ids[4..].iter().enumerate() {
                let logits = m.forward_cached(&[&[*tok], &[*tok]], &mut [&mut *a, &mut *b]).unwrap();
                let want = full.get(4 + i).unwrap().to_vec1::<f32>().unwrap();
                let got = logits.get(0).unwrap().to_vec1::<f32>().unwrap();
                assert!(want.iter().zip(&got).all(|(x, y)| (x - y).abs() < 1e-5), "{cell:?} step {i}");
            }
            assert_eq!(a.len(), 6);
            assert_eq!(a.rewind(6).unwrap(), 6);
            assert_eq!(a.rewind(3).unwrap(), 0, "a hidden state cannot rewind: it clears");
        }
    }

    #[test]
    fn recurrent_config_errors_name_the_field() {
        let mut c = tiny(Cell::Gru, false, 8);
        c.hidden_size = 0;
        assert!(c.validate().unwrap_err().to_string().contains("model.hidden_size"));
        let e = ModelConfig::from_json(serde_json::json!({"family": "lstm", "n_layer": 1, "hidden_size": 8, "max_seq_len": 8, "n_head": 2})).unwrap_err();
        assert!(e.to_string().contains("n_head is a setting of family gpt"), "{e}");
        let ok = ModelConfig::from_json(serde_json::json!({"family": "gru", "n_layer": 1, "hidden_size": 8, "max_seq_len": 8})).unwrap();
        assert_eq!(ok.family(), "gru");
        assert_eq!(ok.get::<RecurrentConfig>().unwrap().n_embd, 8);
    }

    /// Finite differences in f64 of a scalar function of one input tensor.
    fn check_grad(name: &str, x: &Var, f: &dyn Fn(&Tensor) -> Result<Tensor>) {
        let loss = f(x.as_tensor()).unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let base = x.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let eps = 1e-6;
        for i in 0..base.len() {
            let eval = |d: f64| {
                let mut v = base.clone();
                v[i] += d;
                let t = Tensor::from_vec(v, x.shape(), &Device::Cpu).unwrap();
                f(&t).unwrap().to_scalar::<f64>().unwrap()
            };
            let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
            let rel = (fd - g[i]).abs() / (fd.abs() + g[i].abs()).max(1e-8);
            assert!(rel <= 1e-6 || (fd - g[i]).abs() < 1e-9, "{name}[{i}]: analytic {} vs finite difference {fd} (rel {rel})", g[i]);
        }
    }

    #[test]
    fn lstm_and_gru_cells_gradients_equal_finite_differences() {
        let dev = Device::Cpu;
        let (b, h) = (2, 3);
        let rand = |shape: (usize, usize), seed: u64| {
            let mut rng = jielong_core::Rng::new(seed);
            let v: Vec<f64> = (0..shape.0 * shape.1).map(|_| rng.next_f32() as f64 * 2.0 - 1.0).collect();
            Var::from_tensor(&Tensor::from_vec(v, shape, &dev).unwrap()).unwrap()
        };
        for (cell, g) in [(Cell::Lstm, 4), (Cell::Gru, 3), (Cell::Rnn, 1)] {
            let xg = rand((b, g * h), 1);
            let h0 = rand((b, h), 2);
            let c0 = rand((b, h), 3);
            let w = rand((g * h, h), 4);
            let bias = rand((1, g * h), 5);
            let wsum = Tensor::from_vec((0..b * h).map(|i| 0.3 + i as f64 * 0.17).collect::<Vec<_>>(), (b, h), &dev).unwrap();
            // A scalar of both outputs, weighted so every element's gradient differs.
            let run = |xg: &Tensor, h0: &Tensor, c0: &Tensor, w: &Tensor, bias: &Tensor| -> Result<Tensor> {
                let bias = bias.squeeze(0)?;
                match cell {
                    Cell::Lstm => {
                        let (h1, c1) = lstm_step(xg, h0, c0, w, &bias)?;
                        (h1 * &wsum)?.sum_all()? + (c1 * 0.5)?.sum_all()?
                    }
                    Cell::Gru => (gru_step(xg, h0, w, &bias)? * &wsum)?.sum_all(),
                    Cell::Rnn => (rnn_step(xg, h0, w, &bias)? * &wsum)?.sum_all(),
                }
            };
            let (xt, ht, ct, wt, bt) = (xg.as_tensor(), h0.as_tensor(), c0.as_tensor(), w.as_tensor(), bias.as_tensor());
            check_grad(&format!("{cell:?} xg"), &xg, &|x| run(x, ht, ct, wt, bt));
            check_grad(&format!("{cell:?} h"), &h0, &|x| run(xt, x, ct, wt, bt));
            if cell == Cell::Lstm {
                check_grad("Lstm c", &c0, &|x| run(xt, ht, x, wt, bt));
            }
            check_grad(&format!("{cell:?} w_hh"), &w, &|x| run(xt, ht, ct, x, bt));
            check_grad(&format!("{cell:?} b_hh"), &bias, &|x| run(xt, ht, ct, wt, x));
        }
    }
}
