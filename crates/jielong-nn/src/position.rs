//! Positional information: learned tables (GPT-2), fixed sinusoids (the original Transformer),
//! and rotary embeddings (RoPE, GPT-NeoX / Llama "rotate half" layout) applied to queries and keys.

use candle_core::{Device, Result, Tensor, D};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionEncoding {
    Learned,
    Sinusoidal,
    Rope,
}

/// The (max_len, dim) table of the original Transformer: sin on even, cos on odd columns,
/// wavelengths from 2π to 10000·2π.
pub fn sinusoidal_table(max_len: usize, dim: usize, dev: &Device) -> Result<Tensor> {
    let mut data = vec![0f32; max_len * dim];
    for pos in 0..max_len {
        for i in 0..dim / 2 {
            let freq = 1.0 / 10000f64.powf(2.0 * i as f64 / dim as f64);
            let angle = pos as f64 * freq;
            data[pos * dim + 2 * i] = angle.sin() as f32;
            data[pos * dim + 2 * i + 1] = angle.cos() as f32;
        }
    }
    Tensor::from_vec(data, (max_len, dim), dev)
}

/// Rotary position embedding tables for a head dimension `head_dim` (even).
#[derive(Debug, Clone)]
pub struct Rope {
    /// (max_len, head_dim): cos/sin of each position's angle, the half-table repeated twice.
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    pub fn new(max_len: usize, head_dim: usize, theta: f64, dev: &Device) -> Result<Self> {
        let half = head_dim / 2;
        let mut cos = vec![0f32; max_len * head_dim];
        let mut sin = vec![0f32; max_len * head_dim];
        for pos in 0..max_len {
            for i in 0..half {
                let angle = pos as f64 / theta.powf(2.0 * i as f64 / head_dim as f64);
                for j in [i, i + half] {
                    cos[pos * head_dim + j] = angle.cos() as f32;
                    sin[pos * head_dim + j] = angle.sin() as f32;
                }
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (max_len, head_dim), dev)?,
            sin: Tensor::from_vec(sin, (max_len, head_dim), dev)?,
        })
    }

    /// Rotate `xs` (b, h, t, d) for positions `offset..offset + t`.
    pub fn apply(&self, xs: &Tensor, offset: usize) -> Result<Tensor> {
        let (_b, _h, t, d) = xs.dims4()?;
        let cos = self.cos.narrow(0, offset, t)?;
        let sin = self.sin.narrow(0, offset, t)?;
        let x1 = xs.narrow(D::Minus1, 0, d / 2)?;
        let x2 = xs.narrow(D::Minus1, d / 2, d / 2)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        xs.broadcast_mul(&cos)?.broadcast_add(&rotated.broadcast_mul(&sin)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_matches_candle_kernel_and_keeps_norms() {
        let dev = Device::Cpu;
        let xs = Tensor::randn(0f32, 1.0, (1, 2, 5, 8), &dev).unwrap();
        let rope = Rope::new(16, 8, 10000.0, &dev).unwrap();
        let ours = rope.apply(&xs, 0).unwrap();
        let cos = rope.cos.narrow(0, 0, 5).unwrap().narrow(1, 0, 4).unwrap().contiguous().unwrap();
        let sin = rope.sin.narrow(0, 0, 5).unwrap().narrow(1, 0, 4).unwrap().contiguous().unwrap();
        let theirs = candle_nn::rotary_emb::rope(&xs, &cos, &sin).unwrap();
        let diff: f32 = (ours.clone() - theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(diff < 1e-5, "{diff}");
        let n0: f32 = xs.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        let n1: f32 = ours.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!((n0 - n1).abs() < 1e-3);
    }

    #[test]
    fn sinusoidal_table_first_row() {
        let t = sinusoidal_table(4, 6, &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(t[0], vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        assert!((t[1][0] - 1f32.sin()).abs() < 1e-6);
    }
}
