use candle_core::{Device, Tensor, D, Module};
use std::time::Instant;
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn time<F: FnMut()>(name: &str, mut f: F) { f(); let t = Instant::now(); for _ in 0..5 { f(); } println!("{name:40} {:8.1} ms", t.elapsed().as_secs_f64() * 200.0); }
fn main() {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (32, 128, 256), &dev).unwrap();
    let w = Tensor::ones(256, candle_core::DType::F32, &dev).unwrap();
    let bias = Tensor::zeros(256, candle_core::DType::F32, &dev).unwrap();
    let vb = candle_nn::VarBuilder::from_tensors([("weight".to_string(), w.clone()), ("bias".to_string(), bias.clone())].into_iter().collect(), candle_core::DType::F32, &dev);
    let ln = jielong_nn::LayerNorm::new(256, true, 1e-5, vb).unwrap();
    time("layernorm composed (32,128,256)", || { ln.forward(&x).unwrap(); });
    time("mean_keepdim", || { x.mean_keepdim(D::Minus1).unwrap(); });
    time("broadcast_sub", || { x.broadcast_sub(&x.mean_keepdim(D::Minus1).unwrap()).unwrap(); });
    time("broadcast_add bias", || { x.broadcast_add(&bias).unwrap(); });
    let h = Tensor::randn(0f32, 1.0, (4096, 1024), &dev).unwrap();
    time("gelu (4096,1024)", || { h.gelu().unwrap(); });
    let att = Tensor::randn(0f32, 1.0, (32, 4, 128, 128), &dev).unwrap();
    let mask = jielong_nn::causal_mask(128, &dev).unwrap();
    time("att + mask", || { att.broadcast_add(&mask).unwrap(); });
    time("softmax composed (32,4,128,128)", || { candle_nn::ops::softmax(&att, D::Minus1).unwrap(); });
    time("softmax_last_dim fused", || { candle_nn::ops::softmax_last_dim(&att).unwrap(); });
    let q = Tensor::randn(0f32, 1.0, (32, 4, 128, 64), &dev).unwrap();
    time("q @ k^T (32,4,128,64)", || { q.matmul(&q.t().unwrap()).unwrap(); });
    time("qkv split transpose contiguous", || { q.transpose(1,2).unwrap().contiguous().unwrap(); });
    let a = Tensor::randn(0f32, 1.0, (4096, 256), &dev).unwrap();
    let wm = Tensor::randn(0f32, 1.0, (256, 768), &dev).unwrap();
    time("matmul (4096,256)x(256,768)", || { a.matmul(&wm).unwrap(); });
    let wv = Tensor::randn(0f32, 1.0, (4096, 256), &dev).unwrap();
    time("head matmul (4096,256)x(256,4096)^T", || { a.matmul(&wv.t().unwrap()).unwrap(); });
    let lg = Tensor::randn(0f32, 1.0, (4096, 4096), &dev).unwrap();
    time("log_softmax (4096,4096)", || { candle_nn::ops::log_softmax(&lg, D::Minus1).unwrap(); });
}
