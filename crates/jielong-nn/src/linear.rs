//! A linear layer with GPT-2's "Conv1D" weight layout: weight is (in, out), so `y = x·W + b`
//! needs no transpose, and HF GPT-2 checkpoints load as they are.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

#[derive(Debug, Clone)]
pub struct Conv1dLinear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Conv1dLinear {
    /// Weights `weight` (in, out) ~ N(0, std²), `bias` (out) = 0 when `bias` is true.
    pub fn new(n_in: usize, n_out: usize, bias: bool, std: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints((n_in, n_out), "weight", Init::Randn { mean: 0.0, stdev: std })?;
        let bias = if bias { Some(vb.get_with_hints(n_out, "bias", Init::Const(0.0))?) } else { None };
        Ok(Self { weight, bias })
    }
}

impl Module for Conv1dLinear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        // (b, t, in) -> (b·t, in) · (in, out) -> (b, t, out)
        let mut dims = xs.dims().to_vec();
        let n_in = dims.pop().expect("at least one dim");
        let rows: usize = dims.iter().product();
        let ys = xs.reshape((rows, n_in))?.matmul(&self.weight)?;
        let ys = match &self.bias {
            Some(b) => ys.broadcast_add(b)?,
            None => ys,
        };
        dims.push(self.weight.dim(1)?);
        ys.reshape(dims)
    }
}
