//! Linear layers: `y = x·W + b` as one fused CPU kernel with its own backward.
//!
//! Composed from candle ops, a linear layer is a reshape, a matmul, a broadcast bias add and a
//! reshape back: four graph nodes, each of which costs a zero-filled gradient buffer and an add
//! in candle's backward pass, and the bias gradient becomes a strided sum over rows that runs
//! at well under 1 GFLOP/s (as long as the matmul itself at the small preset's shapes; see
//! BENCHMARKS.md). Here forward is one product written over the broadcast bias, and backward
//! is two products reading the operands transposed in place, dX = dY·Wᵀ and dW = Xᵀ·dY (or
//! dYᵀ·X), plus a cache-friendly column sum for db. `forward_reference` is the composed path.
//!
//! Weights come in two layouts: GPT-2's "Conv1D" (in, out), where y = x·W, and the usual
//! (out, in) of `nn.Linear` and of a tied embedding used as the LM head, where y = x·Wᵀ.

use crate::kernel::{self, contiguous_f32};
use crate::matmul::{parallelism, sgemm, Mat};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

/// How a weight matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// (in, out): y = x·W (GPT-2 Conv1D).
    InOut,
    /// (out, in): y = x·Wᵀ (torch `nn.Linear`, tied LM heads).
    OutIn,
}

/// `x (…, in)` → `x·W + b (…, out)`, fused on CPU f32, composed elsewhere.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, layout: WeightLayout) -> Result<Tensor> {
    let (n_in, n_out) = match layout {
        WeightLayout::InOut => w.dims2()?,
        WeightLayout::OutIn => {
            let (o, i) = w.dims2()?;
            (i, o)
        }
    };
    if x.dim(candle_core::D::Minus1)? != n_in {
        candle_core::bail!("linear: input has {} features, the weight expects {n_in}", x.dim(candle_core::D::Minus1)?);
    }
    if !crate::fused_for(x) || w.dtype() != DType::F32 {
        return linear_reference(x, w, b, layout);
    }
    let op = LinearOp { layout, n_in, n_out };
    let x = x.contiguous()?;
    match b {
        Some(b) => x.apply_op3(&w.contiguous()?, &b.contiguous()?, op),
        None => x.apply_op2(&w.contiguous()?, op),
    }
}

/// The composed path: reshape, matmul, broadcast add, reshape.
pub fn linear_reference(x: &Tensor, w: &Tensor, b: Option<&Tensor>, layout: WeightLayout) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let n_in = dims.pop().expect("at least one dim");
    let rows: usize = dims.iter().product();
    let w = match layout {
        WeightLayout::InOut => w.clone(),
        WeightLayout::OutIn => w.t()?,
    };
    let ys = x.reshape((rows, n_in))?.matmul(&w)?;
    let ys = match b {
        Some(b) => ys.broadcast_add(b)?,
        None => ys,
    };
    dims.push(w.dim(1)?);
    ys.reshape(dims)
}

struct LinearOp {
    layout: WeightLayout,
    n_in: usize,
    n_out: usize,
}

impl LinearOp {
    fn forward(&self, x: &[f32], w: &[f32], b: Option<&[f32]>, shape: &Shape) -> Result<(CpuStorage, Shape)> {
        let (n_in, n_out) = (self.n_in, self.n_out);
        let rows = x.len() / n_in.max(1);
        if w.len() != n_in * n_out || b.is_some_and(|b| b.len() != n_out) {
            candle_core::bail!("linear: weight or bias does not match ({n_in} → {n_out})");
        }
        let mut y = kernel::uninit_f32(rows * n_out);
        linear_into(x, w, b, n_in, n_out, self.layout, &mut y);
        let mut dims = shape.dims().to_vec();
        *dims.last_mut().expect("rank ≥ 1") = n_out;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    /// (dx, dw, db) for upstream gradient `dy`, each only where its operand is part of the
    /// graph (`Tensor::track_op`): a frozen weight (a detached tensor, as a LoRA or prefix run
    /// loads its base) costs no dW product, and an input that leads to no trained parameter
    /// (the first layer over frozen embeddings) no dX product.
    fn backward(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (need_dx, need_dw, need_db) = (x.track_op(), w.track_op(), b.is_some_and(Tensor::track_op));
        kernel::with_f32([(x, "linear input"), (w, "linear weight"), (&dy, "linear gradient")], |[xd, wd, g]| {
            let (n_in, n_out) = (self.n_in, self.n_out);
            let rows = xd.len() / n_in.max(1);
            let dev = x.device();
            // Each is written whole (products with accumulate = false, column sums).
            let dx = need_dx.then(|| {
                let mut dx = kernel::uninit_f32(rows * n_in);
                linear_dx_into(wd, g, n_in, n_out, self.layout, &mut dx, false);
                Tensor::from_vec(dx, x.shape(), dev)
            });
            let dw = need_dw.then(|| {
                let mut dw = kernel::uninit_f32(n_in * n_out);
                linear_dw_into(xd, g, n_in, n_out, self.layout, &mut dw);
                Tensor::from_vec(dw, w.shape(), dev)
            });
            let db = need_db.then(|| Tensor::from_vec(column_sums(g, n_out), n_out, dev));
            Ok((dx.transpose()?, dw.transpose()?, db.transpose()?))
        })
    }
}

fn weight_mat(w: &[f32], n_in: usize, n_out: usize, layout: WeightLayout) -> Mat {
    match layout {
        WeightLayout::InOut => Mat::rows(w, n_out),
        WeightLayout::OutIn => Mat::rows_t(w, n_in),
    }
}

/// y (rows, n_out) = x (rows, n_in) · W + b, written whole: rows are pre-filled with the bias
/// and the product accumulates onto them, or the product writes them (no bias).
pub(crate) fn linear_into(x: &[f32], w: &[f32], b: Option<&[f32]>, n_in: usize, n_out: usize, layout: WeightLayout, y: &mut [f32]) {
    if let Some(b) = b {
        y.par_chunks_mut(n_out * 256).for_each(|ys| ys.chunks_mut(n_out).for_each(|r| r.copy_from_slice(b)));
    }
    linear_add_into(x, w, n_in, n_out, layout, y, b.is_some());
}

/// y (rows, n_out) = x·W, or y += x·W with `accumulate` (a residual connection written into
/// the stream directly).
pub(crate) fn linear_add_into(x: &[f32], w: &[f32], n_in: usize, n_out: usize, layout: WeightLayout, y: &mut [f32], accumulate: bool) {
    let rows = y.len() / n_out.max(1);
    assert!(x.len() == rows * n_in && w.len() == n_in * n_out, "linear: buffer sizes");
    unsafe { sgemm(rows, n_out, n_in, Mat::rows(x, n_in), weight_mat(w, n_in, n_out, layout), y.as_mut_ptr(), n_out, accumulate, parallelism(rows, n_out, n_in)) };
}

/// The linear layer's backward for upstream `g` (rows, n_out): dX = g·Wᵀ written into `dx`
/// (added to it with `dx_accumulate`), dW = Xᵀ·g (or gᵀ·X) and db = Σ_rows g overwritten;
/// `dw` None skips the weight's product (a frozen weight).
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_backward_into(x: &[f32], w: &[f32], g: &[f32], n_in: usize, n_out: usize, layout: WeightLayout, dx: &mut [f32], dx_accumulate: bool, dw: Option<&mut [f32]>, db: Option<&mut [f32]>) {
    linear_dx_into(w, g, n_in, n_out, layout, dx, dx_accumulate);
    if let Some(dw) = dw {
        linear_dw_into(x, g, n_in, n_out, layout, dw);
    }
    if let Some(db) = db {
        db.copy_from_slice(&column_sums(g, n_out));
    }
}

/// dX (rows, in) = dY (rows, out) · Wᵀ, written (or added with `accumulate`) into `dx`.
pub(crate) fn linear_dx_into(w: &[f32], g: &[f32], n_in: usize, n_out: usize, layout: WeightLayout, dx: &mut [f32], accumulate: bool) {
    let rows = g.len() / n_out.max(1);
    assert!(dx.len() == rows * n_in && w.len() == n_in * n_out, "linear backward: buffer sizes");
    let wt = match layout {
        WeightLayout::InOut => Mat::rows_t(w, n_out),
        WeightLayout::OutIn => Mat::rows(w, n_in),
    };
    unsafe { sgemm(rows, n_in, n_out, Mat::rows(g, n_out), wt, dx.as_mut_ptr(), n_in, accumulate, parallelism(rows, n_in, n_out)) };
}

/// dW: Xᵀ·dY (in, out) or dYᵀ·X (out, in), overwritten.
pub(crate) fn linear_dw_into(x: &[f32], g: &[f32], n_in: usize, n_out: usize, layout: WeightLayout, dw: &mut [f32]) {
    let rows = x.len() / n_in.max(1);
    assert!(dw.len() == n_in * n_out && g.len() == rows * n_out, "linear backward: buffer sizes");
    unsafe {
        match layout {
            WeightLayout::InOut => sgemm(n_in, n_out, rows, Mat::rows_t(x, n_in), Mat::rows(g, n_out), dw.as_mut_ptr(), n_out, false, parallelism(n_in, n_out, rows)),
            WeightLayout::OutIn => sgemm(n_out, n_in, rows, Mat::rows_t(g, n_out), Mat::rows(x, n_in), dw.as_mut_ptr(), n_in, false, parallelism(n_in, n_out, rows)),
        }
    }
}

/// Σ over rows of a row-major (rows, cols) matrix: blocks of rows in parallel, each adding
/// whole rows into its own accumulator (unit stride, vectorised), then the partial sums added
/// in block order, so that the result is the same bit for bit on every run (see
/// `kernel::sum_in_order`).
pub(crate) fn column_sums(g: &[f32], cols: usize) -> Vec<f32> {
    const ROWS: usize = 128;
    let partials: Vec<Vec<f32>> = g
        .par_chunks(cols * ROWS)
        .map(|block| {
            let mut acc = vec![0f32; cols];
            for row in block.chunks(cols) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
            acc
        })
        .collect();
    let mut sums = vec![0f32; cols];
    crate::kernel::add_in_order(partials, &mut sums);
    sums
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "jielong-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(contiguous_f32(s1, l1, "linear input")?, contiguous_f32(s2, l2, "linear weight")?, None, l1.shape())
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(x, w, None, dy)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "jielong-linear-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let b = contiguous_f32(s3, l3, "linear bias")?;
        self.forward(contiguous_f32(s1, l1, "linear input")?, contiguous_f32(s2, l2, "linear weight")?, Some(b), l1.shape())
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.backward(x, w, Some(b), dy)
    }
}

/// A linear layer with GPT-2's "Conv1D" weight layout: weight is (in, out), so `y = x·W + b`
/// needs no transpose, and HF GPT-2 checkpoints load as they are.
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

    /// The composed candle path, for parity tests.
    pub fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        linear_reference(xs, &self.weight, self.bias.as_ref(), WeightLayout::InOut)
    }

    /// The (in, out) weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The (out) bias, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Conv1dLinear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        linear(xs, &self.weight, self.bias.as_ref(), WeightLayout::InOut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::testing::{max_abs, max_diff};

    fn scale(t: &Tensor) -> f32 {
        max_abs(t).max(1.0)
    }

    #[test]
    fn fused_linear_matches_composed_path_values_and_gradients() {
        let dev = Device::Cpu;
        // Shapes: tiny, odd sizes, a 3-d input, and one large enough to use every thread.
        for (lead, n_in, n_out, bias, layout) in [
            (vec![3], 5, 7, true, WeightLayout::InOut),
            (vec![2, 9], 33, 17, false, WeightLayout::InOut),
            (vec![4, 5], 16, 40, true, WeightLayout::OutIn),
            (vec![300], 128, 96, false, WeightLayout::OutIn),
            (vec![2, 150], 96, 200, true, WeightLayout::InOut),
        ] {
            let mut xdims = lead.clone();
            xdims.push(n_in);
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, xdims, &dev).unwrap()).unwrap();
            let wshape = if layout == WeightLayout::InOut { (n_in, n_out) } else { (n_out, n_in) };
            let w = Var::from_tensor(&Tensor::randn(0f32, 0.5, wshape, &dev).unwrap()).unwrap();
            let b = Var::from_tensor(&Tensor::randn(0f32, 0.5, n_out, &dev).unwrap()).unwrap();
            let bias = bias.then(|| b.as_tensor());
            let mut ydims = lead.clone();
            ydims.push(n_out);
            let r = Tensor::randn(0f32, 1.0, ydims, &dev).unwrap();
            let fused = linear(x.as_tensor(), w.as_tensor(), bias, layout).unwrap();
            let refr = linear_reference(x.as_tensor(), w.as_tensor(), bias, layout).unwrap();
            assert_eq!(fused.dims(), refr.dims());
            assert!(max_diff(&fused, &refr) <= 1e-5 * scale(&refr), "values differ");
            let ga = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (refr * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let mut vars = vec![("x", &x), ("w", &w)];
            if bias.is_some() {
                vars.push(("b", &b));
            }
            for (name, v) in vars {
                let (a, e) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
                assert_eq!(a.dims(), e.dims());
                let d = max_diff(a, e);
                assert!(d <= 1e-5 * scale(e), "d{name} differs by {d} for {lead:?}×{n_in}→{n_out} {layout:?}");
            }
        }
    }

    /// A detached (frozen) weight gets no gradient and the input's gradient is unchanged; an
    /// input outside the graph gets none while the weight's is unchanged.
    #[test]
    fn fused_linear_skips_the_gradients_nothing_needs() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (6, 10), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.5, (7, 10), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.5, 7, &dev).unwrap()).unwrap();
        let r = Tensor::randn(0f32, 1.0, (6, 7), &dev).unwrap();
        let grads = |x: &Tensor, w: &Tensor, b: &Tensor| (linear(x, w, Some(b), WeightLayout::OutIn).unwrap() * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let all = grads(x.as_tensor(), w.as_tensor(), b.as_tensor());
        let frozen_w = grads(x.as_tensor(), &w.as_tensor().detach(), &b.as_tensor().detach());
        let const_x = grads(&x.as_tensor().detach(), w.as_tensor(), b.as_tensor());
        let v = |s: &candle_core::backprop::GradStore, t: &Var| s.get(t.as_tensor()).map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(v(&frozen_w, &x), v(&all, &x));
        assert!(v(&frozen_w, &w).is_none() && v(&frozen_w, &b).is_none());
        assert_eq!(v(&const_x, &w), v(&all, &w));
        assert_eq!(v(&const_x, &b), v(&all, &b));
        assert!(v(&const_x, &x).is_none());
    }

    #[test]
    fn linear_names_a_feature_mismatch() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 5), DType::F32, &dev).unwrap();
        let err = linear(&x, &w, None, WeightLayout::InOut).unwrap_err().to_string();
        assert!(err.contains("3 features") && err.contains("expects 4"), "{err}");
    }

    #[test]
    fn column_sums_add_every_row() {
        let g: Vec<f32> = (0..1000 * 3).map(|i| (i % 7) as f32).collect();
        let sums = column_sums(&g, 3);
        for (j, s) in sums.iter().enumerate() {
            let expect: f32 = (0..1000).map(|r| ((r * 3 + j) % 7) as f32).sum();
            assert_eq!(*s, expect);
        }
    }

    #[test]
    fn column_sums_are_the_same_bit_for_bit_on_every_run() {
        // Values of mixed magnitude, so that the grouping of the partial sums shows in the
        // last bits: the result must be the block-order sum every time, however rayon splits.
        let (rows, cols) = (40 * 128 + 17, 5);
        let g: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 10f32.powi((i % 7) as i32 - 3)).collect();
        let mut expect = vec![0f32; cols];
        for block in g.chunks(cols * 128) {
            let mut acc = vec![0f32; cols];
            block.chunks(cols).for_each(|r| acc.iter_mut().zip(r).for_each(|(a, v)| *a += v));
            expect.iter_mut().zip(&acc).for_each(|(e, a)| *e += a);
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        for _ in 0..20 {
            assert_eq!(pool.install(|| column_sums(&g, cols)), expect);
        }
    }
}
