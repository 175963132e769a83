use candle_core::{Device, Tensor, Var};
use std::time::Instant;
fn med(mut f: impl FnMut()) -> f64 { f(); let mut v: Vec<f64> = (0..9).map(|_| { let t = Instant::now(); f(); t.elapsed().as_secs_f64()*1e3 }).collect(); v.sort_by(f64::total_cmp); v[4] }
fn main() {
    let dev = Device::Cpu;
    let m = 2048; let c = 384;
    for (i, o) in [(c, 3*c), (c, c), (c, 4*c), (4*c, c)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (m, i), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.02, (i, o), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::zeros(o, candle_core::DType::F32, &dev).unwrap()).unwrap();
        let r = Tensor::randn(0f32, 1.0, (m, o), &dev).unwrap();
        let fl = 6.0 * (m * i * o) as f64;
        let fwd = med(|| { jielong_nn::linear(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), jielong_nn::WeightLayout::InOut).unwrap(); });
        let all = med(|| { let y = jielong_nn::linear(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), jielong_nn::WeightLayout::InOut).unwrap(); let _g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap(); });
        let yv = Var::from_tensor(&Tensor::zeros((m,o), candle_core::DType::F32, &dev).unwrap()).unwrap(); let probe = med(|| { let _g = (yv.as_tensor() * &r).unwrap().sum_all().unwrap().backward().unwrap(); });
        let wa = w.as_tensor().clone(); let xa = x.as_tensor().clone(); let ra = r.clone();
        let raw = med(|| { let _ = xa.matmul(&wa).unwrap(); let _ = ra.matmul(&wa.t().unwrap()).unwrap(); let _ = xa.t().unwrap().matmul(&ra).unwrap(); });
        println!("{i}->{o}: fwd {fwd:.2} ms, fwd+bwd {all:.2} ms ({:.0} GFLOP/s), probe {probe:.2}, candle 3 matmuls {raw:.2} ms ({:.0} GFLOP/s)", fl/all/1e6, fl/raw/1e6);
    }
}
