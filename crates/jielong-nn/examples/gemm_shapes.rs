//! Scratch: GFLOP/s of candle matmul on the linear-layer shapes, fwd / dX / dW forms.
use candle_core::{Device, Tensor};
use std::time::Instant;

fn bench(name: &str, flops: f64, mut f: impl FnMut()) {
    f();
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("{name:40} {:8.2} ms {:7.1} GFLOP/s", best * 1e3, flops / best / 1e9);
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (m, c) = (args[0], args[1]);
    if args.len() > 3 {
        for thr in [1, 2] { direct(m, c, 3 * c, thr); direct(m, c, 4 * c, thr); direct(m, 4 * c, c, thr); direct(1024, 1024, 1024, thr); }
        return Ok(());
    }
    for (i, o) in [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c), (c, args[2])] {
        let x = Tensor::randn(0f32, 1.0, (m, i), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (i, o), &dev)?;
        let dy = Tensor::randn(0f32, 1.0, (m, o), &dev)?;
        let fl = 2.0 * (m * i * o) as f64;
        bench(&format!("fwd x·W    {m}x{i} · {i}x{o}"), fl, || { x.matmul(&w).unwrap(); });
        bench(&format!("dX  dY·Wᵀ  {m}x{o} · {o}x{i}"), fl, || { dy.matmul(&w.t().unwrap()).unwrap(); });
        bench(&format!("dW  Xᵀ·dY  {i}x{m} · {m}x{o}"), fl, || { x.t().unwrap().matmul(&dy).unwrap(); });
        bench(&format!("db  sum0   {m}x{o}"), (m * o) as f64, || { dy.sum_keepdim(0).unwrap(); });
    }
    Ok(())
}

#[allow(dead_code)]
pub fn direct(m: usize, k: usize, n: usize, threads: usize) {
    let a = vec![1f32; m * k];
    let b = vec![1f32; k * n];
    let mut c = vec![0f32; m * n];
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    bench(&format!("gemm direct {m}x{k}x{n} thr{threads}"), 2.0 * (m * n * k) as f64, || unsafe {
        gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, k as isize, b.as_ptr(), 1, n as isize, 0.0, 1.0, false, false, false, par);
    });
}
