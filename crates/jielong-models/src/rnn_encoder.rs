//! Recurrent encoders: a stack of RNN, LSTM or GRU layers read over a padded batch of
//! sequences of different lengths, forwards only or in both directions (bidirectional), as
//! PyTorch's `nn.LSTM(bidirectional=True)` over a `pack_padded_sequence` computes it.
//!
//! Layer k of the backward direction reads each sequence from its own last token back to its
//! first (not from the padding), so a short source is encoded exactly as it would be alone.
//! Every position's output is the concatenation [forward; backward] (width 2·hidden), and the
//! next layer reads that. Outputs past a sequence's length are zero, and the final state of
//! each direction is the state after the sequence's own last token (forwards) or first token
//! (backwards), in PyTorch's `h_n` order: layer 0 forwards, layer 0 backwards, layer 1 …
//!
//! Weights carry PyTorch's names under the encoder's prefix, so a state dict of
//! `nn.LSTM(…, bidirectional=True)` loads unchanged:
//! ```text
//! weight_ih_l{k}[_reverse]   (G·hidden, in_k)   in_0 = input size, in_k = dirs·hidden
//! weight_hh_l{k}[_reverse]   (G·hidden, hidden)
//! bias_ih_l{k}[_reverse]     (G·hidden)
//! bias_hh_l{k}[_reverse]     (G·hidden)
//! ```

use crate::recurrent::{gru_step, lstm_step, rnn_step, Cell};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use jielong_nn::{linear, recurrent_scan, WeightLayout};

/// One direction of one layer, PyTorch layout (out, in).
pub struct DirWeights {
    pub w_ih: Tensor,
    pub w_hh: Tensor,
    pub b_ih: Tensor,
    pub b_hh: Tensor,
}

impl DirWeights {
    /// The weights named `weight_ih_l{layer}{suffix}`, … under `vb`, initialised as PyTorch's
    /// U(−1/√hidden, 1/√hidden).
    pub fn new(vb: &VarBuilder, cell: Cell, n_in: usize, hidden: usize, layer: usize, suffix: &str) -> Result<Self> {
        let g = cell.gates() * hidden;
        let k = 1.0 / (hidden as f64).sqrt();
        let uni = Init::Uniform { lo: -k, up: k };
        Ok(Self {
            w_ih: vb.get_with_hints((g, n_in), &format!("weight_ih_l{layer}{suffix}"), uni)?,
            w_hh: vb.get_with_hints((g, hidden), &format!("weight_hh_l{layer}{suffix}"), uni)?,
            b_ih: vb.get_with_hints(g, &format!("bias_ih_l{layer}{suffix}"), uni)?,
            b_hh: vb.get_with_hints(g, &format!("bias_hh_l{layer}{suffix}"), uni)?,
        })
    }

    /// Parameters of one direction of a layer.
    pub fn n_params(cell: Cell, n_in: usize, hidden: usize) -> usize {
        cell.gates() * hidden * (n_in + hidden + 2)
    }
}

/// What one direction of one layer returns.
pub struct DirOutput {
    /// (b, t, hidden): the hidden state after each step (kept through padded steps).
    pub outputs: Tensor,
    /// (b, hidden): the state after each sequence's last real step.
    pub h: Tensor,
    /// The LSTM's cell state, (b, hidden).
    pub c: Option<Tensor>,
}

/// Run one direction of one layer over `xs` (b, t, in) from (h0, c0). `mask`: (b, t) of 1.0
/// where a step is real and 0.0 on padding; on a padded step the state stays as it was.
pub fn run_direction(cell: Cell, w: &DirWeights, xs: &Tensor, h0: &Tensor, c0: Option<&Tensor>, mask: Option<&Tensor>) -> Result<DirOutput> {
    // The input side of every gate for all steps in one product: (b, t, G·hidden).
    let xg = linear(xs, &w.w_ih, Some(&w.b_ih), WeightLayout::OutIn)?;
    if jielong_nn::fused_for(&xg) {
        // The whole recurrence as one kernel, forward and backward (jielong_nn::recurrent_scan).
        let keep = match mask {
            Some(m) => Some(m.flatten_all()?.to_vec1::<f32>()?.into_iter().map(|v| v > 0.5).collect()),
            None => None,
        };
        let c0 = match (cell, c0) {
            (Cell::Lstm, None) => Some(h0.zeros_like()?),
            (_, c) => c.cloned(),
        };
        let out = recurrent_scan(cell.scan(), &xg, &w.w_hh, &w.b_hh, h0, c0.as_ref(), keep)?;
        return Ok(DirOutput { outputs: out.outputs, h: out.h, c: out.c });
    }
    run_direction_reference(cell, w, &xg, h0, c0, mask)
}

/// `run_direction` composed of candle ops step by step, from the input side of the gates `xg`
/// (b, t, G·hidden): the reference path (other devices and dtypes, `--reference-kernels`).
pub fn run_direction_reference(cell: Cell, w: &DirWeights, xg: &Tensor, h0: &Tensor, c0: Option<&Tensor>, mask: Option<&Tensor>) -> Result<DirOutput> {
    let t = xg.dim(1)?;
    let mut h = h0.clone();
    let mut c = if cell == Cell::Lstm {
        Some(match c0 {
            Some(c) => c.clone(),
            None => h0.zeros_like()?,
        })
    } else {
        None
    };
    let mut outs = Vec::with_capacity(t);
    for s in 0..t {
        let x_t = xg.narrow(1, s, 1)?.squeeze(1)?;
        let (h2, c2) = match cell {
            Cell::Rnn => (rnn_step(&x_t, &h, &w.w_hh, &w.b_hh)?, None),
            Cell::Gru => (gru_step(&x_t, &h, &w.w_hh, &w.b_hh)?, None),
            Cell::Lstm => {
                let (h2, c2) = lstm_step(&x_t, &h, c.as_ref().expect("lstm cell state"), &w.w_hh, &w.b_hh)?;
                (h2, Some(c2))
            }
        };
        match mask {
            None => {
                h = h2;
                c = c2;
            }
            Some(m) => {
                // h ← h + m·(h' − h): a padded step leaves the state as it was.
                let m = m.narrow(1, s, 1)?;
                h = (&h + m.broadcast_mul(&(h2 - &h)?)?)?;
                if let (Some(c_old), Some(c_new)) = (c.as_ref(), c2) {
                    c = Some((c_old + m.broadcast_mul(&(c_new - c_old)?)?)?);
                }
            }
        }
        outs.push(h.clone());
    }
    Ok(DirOutput { outputs: Tensor::stack(&outs, 1)?, h, c })
}

/// (b, t) of 1.0 at positions before each length, 0.0 after.
pub fn length_mask(lens: &[usize], t: usize, dev: &Device) -> Result<Tensor> {
    let v: Vec<f32> = lens.iter().flat_map(|&l| (0..t).map(move |i| if i < l { 1.0 } else { 0.0 })).collect();
    Tensor::from_vec(v, (lens.len(), t), dev)
}

/// Row indices of a (b·t, …) tensor that reverse each sequence within its own length (padding
/// stays where it is). The permutation is its own inverse.
fn reverse_within(lens: &[usize], t: usize, dev: &Device) -> Result<Tensor> {
    let v: Vec<u32> = lens
        .iter()
        .enumerate()
        .flat_map(|(r, &l)| (0..t).map(move |i| (r * t + if i < l { l - 1 - i } else { i }) as u32))
        .collect();
    Tensor::from_vec(v, lens.len() * t, dev)
}

fn permute_rows(xs: &Tensor, perm: &Tensor) -> Result<Tensor> {
    let (b, t, d) = xs.dims3()?;
    xs.reshape((b * t, d))?.index_select(perm, 0)?.reshape((b, t, d))
}

/// What the encoder returns.
pub struct EncoderOutput {
    /// (b, t, dirs·hidden), zero past each sequence's length.
    pub outputs: Tensor,
    /// (n_layer·dirs, b, hidden), PyTorch's `h_n`.
    pub h_n: Tensor,
    /// The LSTM's `c_n`, same shape.
    pub c_n: Option<Tensor>,
}

/// A stack of recurrent layers, one or two directions.
pub struct RecurrentEncoder {
    pub cell: Cell,
    pub hidden: usize,
    pub bidirectional: bool,
    /// Per layer: the forward direction, then the backward one when bidirectional.
    layers: Vec<Vec<DirWeights>>,
}

impl RecurrentEncoder {
    pub fn new(vb: VarBuilder, cell: Cell, n_in: usize, hidden: usize, n_layer: usize, bidirectional: bool) -> Result<Self> {
        let dirs = if bidirectional { 2 } else { 1 };
        let mut layers = Vec::with_capacity(n_layer);
        for l in 0..n_layer {
            let inp = if l == 0 { n_in } else { dirs * hidden };
            let mut d = vec![DirWeights::new(&vb, cell, inp, hidden, l, "")?];
            if bidirectional {
                d.push(DirWeights::new(&vb, cell, inp, hidden, l, "_reverse")?);
            }
            layers.push(d);
        }
        Ok(Self { cell, hidden, bidirectional, layers })
    }

    /// Parameters of an encoder of these sizes.
    pub fn n_params(cell: Cell, n_in: usize, hidden: usize, n_layer: usize, bidirectional: bool) -> usize {
        let dirs = if bidirectional { 2 } else { 1 };
        (0..n_layer).map(|l| dirs * DirWeights::n_params(cell, if l == 0 { n_in } else { dirs * hidden }, hidden)).sum()
    }

    /// Width of each output position: dirs·hidden.
    pub fn width(&self) -> usize {
        self.hidden * if self.bidirectional { 2 } else { 1 }
    }

    pub fn n_layer(&self) -> usize {
        self.layers.len()
    }

    /// Encode `xs` (b, t, n_in) whose sequence r has `lens[r]` real positions (1 ≤ lens[r] ≤
    /// t). `between`: applied to each layer's output before the next layer reads it (dropout).
    pub fn forward(&self, xs: &Tensor, lens: &[usize], between: &dyn Fn(&Tensor, usize) -> Result<Tensor>) -> Result<EncoderOutput> {
        let (b, t, _) = xs.dims3()?;
        if lens.len() != b || lens.iter().any(|&l| l == 0 || l > t) {
            candle_core::bail!("encoder: lengths {lens:?} do not fit a batch of {b} sequences of {t} positions");
        }
        let dev = xs.device();
        let full = lens.iter().all(|&l| l == t);
        let mask = if full { None } else { Some(length_mask(lens, t, dev)?) };
        let perm = if self.bidirectional { Some(reverse_within(lens, t, dev)?) } else { None };
        let h0 = Tensor::zeros((b, self.hidden), xs.dtype(), dev)?;
        let mut x = xs.clone();
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for (l, dirs) in self.layers.iter().enumerate() {
            let fwd = run_direction(self.cell, &dirs[0], &x, &h0, None, mask.as_ref())?;
            let mut out = fwd.outputs;
            hs.push(fwd.h);
            cs.extend(fwd.c);
            if let (Some(bw), Some(perm)) = (dirs.get(1), perm.as_ref()) {
                let rev = run_direction(self.cell, bw, &permute_rows(&x, perm)?, &h0, None, mask.as_ref())?;
                out = Tensor::cat(&[&out, &permute_rows(&rev.outputs, perm)?], 2)?;
                hs.push(rev.h);
                cs.extend(rev.c);
            }
            if let Some(m) = &mask {
                out = out.broadcast_mul(&m.unsqueeze(2)?.to_dtype(out.dtype())?)?;
            }
            x = if l + 1 < self.layers.len() { between(&out, l)? } else { out };
        }
        let c_n = if cs.is_empty() { None } else { Some(Tensor::stack(&cs, 0)?) };
        Ok(EncoderOutput { outputs: x, h_n: Tensor::stack(&hs, 0)?, c_n })
    }

    /// The top layer's final state of every direction side by side, (b, dirs·hidden): the
    /// fixed summary of a whole sequence.
    pub fn summary(&self, out: &EncoderOutput) -> Result<Tensor> {
        let dirs = if self.bidirectional { 2 } else { 1 };
        let n = out.h_n.dim(0)?;
        let top: Vec<Tensor> = (n - dirs..n).map(|i| out.h_n.get(i)).collect::<Result<_>>()?;
        Tensor::cat(&top, 1)
    }
}

/// Zeros of (n, b, hidden) f32, a fresh recurrent state.
pub fn zero_state(n: usize, b: usize, hidden: usize, dev: &Device) -> Result<Tensor> {
    Tensor::zeros((n, b, hidden), DType::F32, dev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jielong_nn::ParamStore;

    #[test]
    fn rnn_encoder_short_sequence_encodes_as_if_alone() {
        let dev = Device::Cpu;
        for cell in [Cell::Rnn, Cell::Lstm, Cell::Gru] {
            let params = ParamStore::new(4);
            let enc = RecurrentEncoder::new(params.var_builder(&dev).pp("enc"), cell, 5, 6, 2, true).unwrap();
            let mut rng = jielong_core::Rng::new(9);
            let xs: Vec<f32> = (0..2 * 7 * 5).map(|_| rng.next_f32() - 0.5).collect();
            let xs = Tensor::from_vec(xs, (2, 7, 5), &dev).unwrap();
            let none = |x: &Tensor, _: usize| Ok(x.clone());
            let batch = enc.forward(&xs, &[7, 4], &none).unwrap();
            let alone = enc.forward(&xs.narrow(0, 1, 1).unwrap().narrow(1, 0, 4).unwrap(), &[4], &none).unwrap();
            let a = batch.outputs.get(1).unwrap().narrow(0, 0, 4).unwrap();
            let d = (a - alone.outputs.squeeze(0).unwrap()).unwrap().abs().unwrap().max_keepdim(0).unwrap().max_keepdim(1).unwrap();
            assert!(d.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0] < 1e-6, "{cell:?}");
            let pad = batch.outputs.get(1).unwrap().narrow(0, 4, 3).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(pad, 0.0, "{cell:?}: outputs past the length are zero");
            let hb = batch.h_n.narrow(1, 1, 1).unwrap();
            let d = (hb - alone.h_n).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-6, "{cell:?}: final states {d}");
            assert_eq!(enc.summary(&batch).unwrap().dims(), &[2, 12]);
            assert_eq!(params.n_params(), RecurrentEncoder::n_params(cell, 5, 6, 2, true));
        }
    }
}
