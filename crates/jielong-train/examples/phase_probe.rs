// Temporary probe: time forward / loss / backward / optimizer of the small preset.
use candle_core::Device;
use jielong_models::gpt::ForwardOpts;
use jielong_train::{step::{batch_tensors, lm_loss}, StepRunner, TrainConfig};
use std::time::Instant;
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() {
    let dev = Device::Cpu;
    let mut cfg = jielong_models::GptConfig::tiny();
    cfg.vocab_size = 4096; cfg.n_embd = 256; cfg.dropout = 0.0;
    let tc = TrainConfig::default();
    let mut r = StepRunner::new(&cfg, &tc, &dev).unwrap();
    let b = jielong_data::Batch { batch_size: 32, seq_len: 128, inputs: (0..4096).map(|i| (i * 7 % 4096) as u32).collect(), targets: (0..4096).map(|i| (i * 13 % 4096) as u32).collect() };
    for it in 0..3 {
        let (ids, tg) = batch_tensors(&b, &dev).unwrap();
        let t0 = Instant::now();
        let logits = r.model.forward(&ids, ForwardOpts::default()).unwrap();
        let t1 = Instant::now();
        let loss = lm_loss(&logits, &tg).unwrap();
        let _ = loss.to_scalar::<f32>().unwrap();
        let t2 = Instant::now();
        let grads = loss.backward().unwrap();
        let t3 = Instant::now();
        r.opt.step(&grads, 1e-3, 1.0).unwrap();
        let t4 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
        println!("{it}: fwd {:.0} ms, loss {:.0} ms, bwd {:.0} ms, opt {:.0} ms", ms(t0,t1), ms(t1,t2), ms(t2,t3), ms(t3,t4));
    }
}
