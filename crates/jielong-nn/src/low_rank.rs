//! LoRA's low-rank term as one CPU op: `y + scale·(x·Aᵀ)·Bᵀ`, A (R, in) and B (out, R) as PEFT
//! stores them. Composed from candle ops the term costs a thin product, a product the size of
//! `y`, a scaling pass, an add, and in backward the same again plus the add's gradient copies;
//! here the forward is one copy of `y` and two thin products accumulating onto it, and the
//! backward four thin products (dB, the rank-sized gradient, dA, dx). The fused GPT block runs
//! the same kernels inside its own op ([`crate::block`]).

use crate::kernel::{self, contiguous_f32};
use crate::linear::{linear_add_into, linear_dw_into, linear_dx_into, linear_into, WeightLayout};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use std::sync::Mutex;

/// `scale·(x·Aᵀ)` (rows, r) for an adapter A (r, n_in).
pub(crate) fn low_input(x: &[f32], a: &[f32], n_in: usize, r: usize, scale: f32) -> Vec<f32> {
    let mut h = kernel::uninit_f32(x.len() / n_in * r);
    linear_into(x, a, None, n_in, r, WeightLayout::OutIn, &mut h);
    if scale != 1.0 {
        h.iter_mut().for_each(|v| *v *= scale);
    }
    h
}

/// y += h·Bᵀ for the scaled adapter input `h` (rows, r) and B (n_out, r).
pub(crate) fn low_add_into(h: &[f32], b: &[f32], r: usize, n_out: usize, y: &mut [f32]) {
    linear_add_into(h, b, r, n_out, WeightLayout::OutIn, y, true);
}

/// The low-rank term's backward for upstream `g` (rows, n_out), with `h` = scale·(x·Aᵀ) from
/// the forward: dB = gᵀ·h and dA = (scale·g·B)ᵀ·x overwritten; dx = scale·(g·B)·A written, or
/// added with `dx_accumulate` (None: not needed, not computed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn low_rank_backward(x: &[f32], h: &[f32], (a, b): (&[f32], &[f32]), g: &[f32], n_in: usize, n_out: usize, (r, scale): (usize, f32), (da, db): (&mut [f32], &mut [f32]), dx: Option<&mut [f32]>, dx_accumulate: bool) {
    linear_dw_into(h, g, r, n_out, WeightLayout::OutIn, db);
    let mut dz = kernel::uninit_f32(h.len());
    linear_dx_into(b, g, r, n_out, WeightLayout::OutIn, &mut dz, false);
    if scale != 1.0 {
        dz.iter_mut().for_each(|v| *v *= scale);
    }
    linear_dw_into(x, &dz, n_in, r, WeightLayout::OutIn, da);
    if let Some(dx) = dx {
        linear_dx_into(a, &dz, n_in, r, WeightLayout::OutIn, dx, dx_accumulate);
    }
}

/// `y + scale·(x·Aᵀ)·Bᵀ`: y (…, out), x (…, in), A (R, in), B (out, R). The fused op on CPU
/// f32, else the composed candle ops (the reference).
pub fn low_rank_add(y: &Tensor, x: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    let (r, n_in) = a.dims2()?;
    let (n_out, rb) = b.dims2()?;
    let (xi, yo) = (x.dim(candle_core::D::Minus1)?, y.dim(candle_core::D::Minus1)?);
    if rb != r || xi != n_in || yo != n_out || x.elem_count() / n_in.max(1) != y.elem_count() / n_out.max(1) {
        candle_core::bail!("low_rank_add: y {:?}, x {:?}, A {:?}, B {:?} do not fit y + (x·Aᵀ)·Bᵀ", y.dims(), x.dims(), a.dims(), b.dims());
    }
    if !crate::fused_for(x) || !crate::fused_for(y) || !crate::fused_for(a) || !crate::fused_for(b) {
        return low_rank_add_reference(y, x, a, b, scale);
    }
    let ab = Tensor::cat(&[a.flatten_all()?, b.flatten_all()?], 0)?;
    y.contiguous()?.apply_op3(&x.contiguous()?, &ab, LowRankAdd { n_in, n_out, r, scale: scale as f32, saved: Mutex::new(None) })
}

/// The composed path: two products, a scale and an add.
pub fn low_rank_add_reference(y: &Tensor, x: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    let low = crate::linear::linear_reference(&crate::linear::linear_reference(x, a, None, WeightLayout::OutIn)?, b, None, WeightLayout::OutIn)?;
    y + low.affine(scale, 0.0)?
}

struct LowRankAdd {
    n_in: usize,
    n_out: usize,
    r: usize,
    scale: f32,
    /// scale·(x·Aᵀ) from the forward.
    saved: Mutex<Option<Vec<f32>>>,
}

impl CustomOp3 for LowRankAdd {
    fn name(&self) -> &'static str {
        "jielong-low-rank-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = contiguous_f32(s1, l1, "low-rank output")?;
        let x = contiguous_f32(s2, l2, "low-rank input")?;
        let ab = contiguous_f32(s3, l3, "low-rank adapter")?;
        let (a, b) = ab.split_at(self.r * self.n_in);
        let h = low_input(x, a, self.n_in, self.r, self.scale);
        let mut out = y.to_vec();
        low_add_into(&h, b, self.r, self.n_out, &mut out);
        *self.saved.lock().expect("low-rank state lock") = Some(h);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, y: &Tensor, x: &Tensor, ab: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let guard = self.saved.lock().expect("low-rank state lock");
        let Some(h) = guard.as_ref() else { candle_core::bail!("low_rank_add: backward without a forward") };
        let (dx, dab) = kernel::with_f32([(x, "low-rank input"), (ab, "low-rank adapter"), (&g, "low-rank gradient")], |[xd, abd, gd]| {
            let (a, b) = abd.split_at(self.r * self.n_in);
            // Each part is overwritten below.
            let mut dab = kernel::uninit_f32(abd.len());
            let (da, db) = dab.split_at_mut(self.r * self.n_in);
            // The input's gradient only when something upstream trains (not over a frozen
            // embedding, say): `dx` None skips its product.
            let mut dx = x.track_op().then(|| kernel::uninit_f32(xd.len()));
            low_rank_backward(xd, h, (a, b), gd, self.n_in, self.n_out, (self.r, self.scale), (da, db), dx.as_deref_mut(), false);
            Ok((dx, dab))
        })?;
        let dev = x.device();
        let dy = y.track_op().then(|| g.clone());
        let dx = dx.map(|dx| Tensor::from_vec(dx, x.shape(), dev)).transpose()?;
        let dab = ab.track_op().then(|| Tensor::from_vec(dab, ab.shape(), dev)).transpose()?;
        Ok((dy, dx, dab))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{max_abs, max_diff};
    use candle_core::{Device, Var};

    /// The op against the composed candle ops: values and the gradients of y, x, A and B.
    #[test]
    fn low_rank_add_matches_the_composed_ops() {
        let dev = Device::Cpu;
        for (lead, n_in, n_out, r, scale) in [(vec![2, 5], 8, 12, 3, 2.0), (vec![7], 16, 4, 1, 0.5), (vec![3, 2, 4], 6, 6, 4, 1.0)] {
            let rnd = |shape: &[usize]| Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev).unwrap()).unwrap();
            let shape = |last: usize| lead.iter().copied().chain([last]).collect::<Vec<_>>();
            let (y, x, a, b) = (rnd(&shape(n_out)), rnd(&shape(n_in)), rnd(&[r, n_in]), rnd(&[n_out, r]));
            let g = Tensor::randn(0f32, 1.0, shape(n_out), &dev).unwrap();
            let fused = low_rank_add(y.as_tensor(), x.as_tensor(), a.as_tensor(), b.as_tensor(), scale).unwrap();
            let refr = low_rank_add_reference(y.as_tensor(), x.as_tensor(), a.as_tensor(), b.as_tensor(), scale).unwrap();
            assert!(max_diff(&fused, &refr) < 1e-5, "values");
            let ga = (fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (refr * &g).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("y", &y), ("x", &x), ("A", &a), ("B", &b)] {
                let (p, q) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
                let d = max_diff(p, q);
                assert!(d <= 1e-5 * max_abs(q).max(1.0), "d{name} differs by {d} at {lead:?} {n_in}→{n_out} r{r}");
            }
        }
        // Over a frozen input (detached) only the adapter's gradients come back, the same ones.
        let (x, a, b) = (Tensor::randn(0f32, 1.0, (4, 6), &dev).unwrap(), Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 6), &dev).unwrap()).unwrap(), Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 2), &dev).unwrap()).unwrap());
        let y = Tensor::randn(0f32, 1.0, (4, 5), &dev).unwrap();
        let ga = low_rank_add(&y, &x, a.as_tensor(), b.as_tensor(), 2.0).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let gb = low_rank_add_reference(&y, &x, a.as_tensor(), b.as_tensor(), 2.0).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(ga.get(&x).is_none() && ga.get(&y).is_none());
        for v in [&a, &b] {
            assert!(max_diff(ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap()) < 1e-4);
        }
        let z = |s: &[usize]| Tensor::zeros(s, candle_core::DType::F32, &dev).unwrap();
        let err = low_rank_add(&z(&[2, 5]), &z(&[2, 4]), &z(&[3, 4]), &z(&[6, 3]), 1.0).unwrap_err().to_string();
        assert!(err.contains("do not fit"), "{err}");
    }
}
