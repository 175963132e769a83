//! GFLOP/s of f32 matrix products at a training step's linear-layer shapes, in the three
//! forms a linear layer runs (forward x·W, backward dY·Wᵀ and Xᵀ·dY), through candle's matmul
//! (the `gemm` crate) and, with `--split`, gemm's own two-thread split against one band of
//! rows per thread. Each shape is also run through `jielong_nn::matmul_f32`, the product the
//! fused kernels call (one band of rows per thread; one thread under `RAYON_NUM_THREADS=1`),
//! and a 1024³ product through both closes the list. The PyTorch/MKL and NumPy/OpenBLAS twin is
//! bench/gemm_shapes.py.
//!
//! cargo run --release -p jielong-nn --example gemm_shapes -- ROWS N_EMBD VOCAB [--split] [--cold]
//! (small preset: 4096 256 4096; medium: 2048 384 8192)

use candle_core::{Device, Tensor};
use std::time::Instant;

/// With `--cold`, every timed product starts after a pass over 256 MB, so its operands come
/// from memory as they do inside a training step, not from a cache the previous repetition
/// warmed.
static COLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn bench(name: &str, flops: f64, mut f: impl FnMut()) {
    f();
    let cold = COLD.load(std::sync::atomic::Ordering::Relaxed);
    let mut junk = if cold { vec![1f32; 64 << 20] } else { Vec::new() };
    let mut best = f64::MAX;
    for _ in 0..7 {
        junk.iter_mut().for_each(|v| *v += 1.0);
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&junk);
    println!("{name:44} {:8.2} ms {:7.1} GFLOP/s", best * 1e3, flops / best / 1e9);
}

/// gemm's Rayon(2) split against two single-threaded products on halves of the rows.
fn split(m: usize, k: usize, n: usize) {
    let a = vec![1f32; m * k];
    let b = vec![1f32; k * n];
    let mut c = vec![0f32; m * n];
    let fl = 2.0 * (m * n * k) as f64;
    let run = |m: usize, a: &[f32], c: &mut [f32], par| unsafe {
        gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, k as isize, b.as_ptr(), 1, n as isize, 0.0, 1.0, false, false, false, par)
    };
    bench(&format!("gemm Rayon(2)        {m}x{k}x{n}"), fl, || run(m, &a, &mut c, gemm::Parallelism::Rayon(2)));
    let half = m / 2;
    bench(&format!("two bands of rows    {m}x{k}x{n}"), fl, || {
        let (c0, c1) = c.split_at_mut(half * n);
        let (a0, a1) = a.split_at(half * k);
        rayon::join(|| run(half, a0, c0, gemm::Parallelism::None), || run(m - half, a1, c1, gemm::Parallelism::None));
    });
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nums: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let [m, c, v] = nums[..] else {
        eprintln!("usage: gemm_shapes ROWS N_EMBD VOCAB [--split] [--cold]");
        std::process::exit(2);
    };
    COLD.store(args.iter().any(|a| a == "--cold"), std::sync::atomic::Ordering::Relaxed);
    let shapes = [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c), (c, v)];
    if args.iter().any(|a| a == "--split") {
        for (i, o) in shapes {
            split(m, i, o);
        }
        return Ok(());
    }
    let dev = Device::Cpu;
    for (i, o) in shapes {
        let x = Tensor::randn(0f32, 1.0, (m, i), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (i, o), &dev)?;
        let dy = Tensor::randn(0f32, 1.0, (m, o), &dev)?;
        let fl = 2.0 * (m * i * o) as f64;
        bench(&format!("fwd x·W    {m}x{i} · {i}x{o}"), fl, || drop(x.matmul(&w).unwrap()));
        bench(&format!("dX  dY·Wᵀ  {m}x{o} · {o}x{i}"), fl, || drop(dy.matmul(&w.t().unwrap()).unwrap()));
        bench(&format!("dW  Xᵀ·dY  {i}x{m} · {m}x{o}"), fl, || drop(x.t().unwrap().matmul(&dy).unwrap()));
        bench(&format!("db  candle sum over rows {m}x{o}"), (m * o) as f64, || drop(dy.sum_keepdim(0).unwrap()));
        // The same three forms through jielong's own product (what the fused kernels call).
        let (xs, ws, dys) = (x.flatten_all()?.to_vec1::<f32>()?, w.flatten_all()?.to_vec1::<f32>()?, dy.flatten_all()?.to_vec1::<f32>()?);
        let mut out = vec![0f32; m * o.max(i)];
        bench("  jielong matmul_f32 fwd x·W", fl, || jielong_nn::matmul_f32(m, o, i, &xs, false, &ws, false, &mut out));
        bench("  jielong matmul_f32 dX dY·Wᵀ", fl, || jielong_nn::matmul_f32(m, i, o, &dys, false, &ws, true, &mut out));
        let mut dw = vec![0f32; i * o];
        bench("  jielong matmul_f32 dW Xᵀ·dY", fl, || jielong_nn::matmul_f32(i, o, m, &xs, true, &dys, false, &mut dw));
    }
    let a = vec![1f32; 1024 * 1024];
    let mut out = vec![0f32; 1024 * 1024];
    let fl = 2.0 * 1024f64.powi(3);
    let ta = Tensor::from_slice(&a, (1024, 1024), &dev)?;
    bench("candle 1024^3", fl, || drop(ta.matmul(&ta).unwrap()));
    bench("jielong matmul_f32 1024^3", fl, || jielong_nn::matmul_f32(1024, 1024, 1024, &a, false, &a, false, &mut out));
    Ok(())
}
