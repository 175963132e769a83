//! Causal scaled dot-product attention, the readable reference path:
//! softmax(q·kᵀ/√d + mask)·v, with the mask adding −∞ above the diagonal.

use candle_core::{Device, Result, Tensor, D};

/// (t, t) additive mask: 0 on and below the diagonal, −∞ above.
pub fn causal_mask(t: usize, dev: &Device) -> Result<Tensor> {
    causal_mask_after(t, 0, dev)
}

/// (t, offset + t) additive mask for t new queries after `offset` cached keys: query i (at
/// position offset + i) sees keys 0..=offset + i.
pub fn causal_mask_after(t: usize, offset: usize, dev: &Device) -> Result<Tensor> {
    let n = offset + t;
    let data: Vec<f32> = (0..t)
        .flat_map(|i| (0..n).map(move |j| if j <= offset + i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(data, (t, n), dev)
}

/// Causal attention: q (b, h, t, d); k, v (b, h, s, d) with s ≥ t (cached keys first), query
/// i seeing keys 0..=s − t + i. Returns (b, h, t, d) and the attention probabilities
/// (b, h, t, s). On the CPU the scale, mask and softmax are one fused kernel
/// (`causal_softmax`); elsewhere, and as the reference, `causal_self_attention_reference`.
pub fn causal_self_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
    if !crate::fused_for(q) {
        let (t, s) = (q.dim(2)?, k.dim(2)?);
        let mask = if t > 1 { Some(causal_mask_after(t, s - t, q.device())?) } else { None };
        return causal_self_attention_reference(q, k, v, mask.as_ref());
    }
    let d = q.dim(D::Minus1)?;
    let att = q.matmul(&k.t()?)?; // (b, h, t, s)
    let att = crate::causal_softmax::causal_softmax(&att, 1.0 / (d as f64).sqrt())?;
    let ys = att.matmul(v)?; // (b, h, t, d)
    Ok((ys, att))
}

/// The composed path: softmax(q·kᵀ/√d + mask)·v, `mask` (t, s) from `causal_mask` /
/// `causal_mask_after`, or None when nothing is hidden (one new query).
pub fn causal_self_attention_reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
    let d = q.dim(D::Minus1)?;
    let scale = 1.0 / (d as f64).sqrt();
    let att = (q.matmul(&k.t()?)? * scale)?; // (b, h, t, s)
    let att = match mask {
        Some(mask) => att.broadcast_add(mask)?,
        None => att,
    };
    let att = candle_nn::ops::softmax(&att, D::Minus1)?;
    let ys = att.matmul(v)?; // (b, h, t, d)
    Ok((ys, att))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_first_position_sees_only_itself() {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (1, 2, 4, 8), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (1, 2, 4, 8), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (1, 2, 4, 8), &dev).unwrap();
        let (ys, att) = causal_self_attention(&q, &k, &v).unwrap();
        let (ys_ref, _) = causal_self_attention_reference(&q, &k, &v, Some(&causal_mask(4, &dev).unwrap())).unwrap();
        let d: f32 = (&ys - ys_ref).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-5, "fused and reference attention differ by {d}");
        let first = ys.narrow(2, 0, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let v0 = v.narrow(2, 0, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in first.iter().zip(&v0) {
            assert!((a - b).abs() < 1e-6);
        }
        // Rows sum to one, and nothing above the diagonal.
        let att = att.squeeze(0).unwrap().to_vec3::<f32>().unwrap();
        for head in &att {
            for (i, row) in head.iter().enumerate() {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                assert!(row[i + 1..].iter().all(|&x| x == 0.0));
            }
        }
    }
}
