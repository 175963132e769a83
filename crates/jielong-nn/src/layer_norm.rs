//! Layer normalisation over the last dimension, written with differentiable tensor ops.
//! y = (x − mean) / sqrt(var + eps) · weight + bias, with the biased variance (as PyTorch).

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl LayerNorm {
    pub fn new(size: usize, bias: bool, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", Init::Const(1.0))?;
        let bias = if bias { Some(vb.get_with_hints(size, "bias", Init::Const(0.0))?) } else { None };
        Ok(Self { weight, bias, eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mean = xs.mean_keepdim(D::Minus1)?;
        let xc = xs.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let ys = xn.broadcast_mul(&self.weight)?;
        match &self.bias {
            Some(b) => ys.broadcast_add(b),
            None => Ok(ys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn layer_norm_matches_fused_candle_kernel() {
        let dev = Device::Cpu;
        let xs = Tensor::randn(0f32, 3.0, (2, 5, 16), &dev).unwrap();
        let w = Tensor::randn(1f32, 0.1, 16, &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, 16, &dev).unwrap();
        let ln = LayerNorm { weight: w.clone(), bias: Some(b.clone()), eps: 1e-5 };
        let ours = ln.forward(&xs).unwrap();
        let fused = candle_nn::ops::layer_norm(&xs, &w, &b, 1e-5).unwrap();
        let diff = (ours - fused).unwrap().abs().unwrap().max_all().unwrap().to_dtype(DType::F32).unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
