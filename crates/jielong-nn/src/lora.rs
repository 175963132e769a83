//! LoRA (Hu et al. 2021): a low-rank adapter on a linear layer. The frozen weight `W` (out × in)
//! is used as `W + (α/r)·B·A`, with `A` (r × in) and `B` (out × r) the only trained tensors.
//! `B` starts at zero, so an untrained adapter changes nothing; `A` starts as PEFT's
//! (Kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in)).
//!
//! The adapter is family-agnostic: a model lists its linear layers as [`LinearSite`]s (module
//! name, sizes, weight layout), [`Lora::new`] adapts the ones whose name matches a target
//! (PEFT's rule: the whole name, or its last dotted parts), and the model asks
//! [`Lora::weight`] for each adapted weight when it runs. That weight is the effective
//! `W + (α/r)·ΔW` as one candle expression, so the model's fused kernels (which take weights,
//! not layers) run unchanged and the gradient flows to `A` and `B` through candle's autograd;
//! the base weights are never handed to the optimizer. [`LoraLayer::forward`] is the
//! layer-level path, `x·W + (α/r)·(drop(x)·Aᵀ)·Bᵀ`, with LoRA's input dropout; the
//! effective-weight path has no input dropout, and the models refuse a LoRA with dropout > 0.
//!
//! `merge` folds `(α/r)·ΔW` into the base weight (for generation at no extra cost) and
//! `unmerge` takes it out again.

use crate::dropout::{Dropout, MaskSource};
use crate::linear::{linear, WeightLayout};
use crate::params::ParamStore;
use candle_core::{Device, Result, Tensor, Var};
use candle_nn::Init;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// LoRA's settings (PEFT's `LoraConfig`: `r`, `lora_alpha`, `lora_dropout`, `target_modules`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f32,
    /// Module names or name endings (`c_attn`, `q_proj`, `mlp.c_proj`); `all-linear` takes
    /// every site the model lists.
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// The scale applied to `B·A`: α / r.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Whether module `name` is a target (PEFT: equal, or ends with `.target`).
    pub fn targets_module(&self, name: &str) -> bool {
        self.targets.iter().any(|t| t == "all-linear" || name == t || name.ends_with(&format!(".{t}")))
    }
}

/// One linear layer a model can adapt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearSite {
    /// The module's name as in the model's checkpoints, without `.weight`
    /// (`transformer.h.0.attn.c_attn`).
    pub name: String,
    pub n_in: usize,
    pub n_out: usize,
    /// How the base weight is stored.
    pub layout: WeightLayout,
}

/// The adapter of one linear layer.
pub struct LoraLayer {
    /// (r, in)
    pub a: Var,
    /// (out, r)
    pub b: Var,
    pub scale: f64,
    pub dropout: Dropout,
    pub layout: WeightLayout,
    /// Whether `ΔW` is folded into the base weight right now.
    merged: AtomicBool,
}

impl LoraLayer {
    /// `(α/r)·ΔW` in the base weight's layout: `B·A` (out, in), or its transpose for (in, out).
    pub fn delta(&self) -> Result<Tensor> {
        let ba = self.b.as_tensor().matmul(self.a.as_tensor())?; // (out, in)
        let ba = match self.layout {
            WeightLayout::OutIn => ba,
            WeightLayout::InOut => ba.t()?.contiguous()?,
        };
        ba.affine(self.scale, 0.0)
    }

    /// The weight the layer computes with: `W + (α/r)·ΔW`, or `W` itself once merged.
    pub fn effective(&self, base: &Tensor) -> Result<Tensor> {
        if self.is_merged() {
            return Ok(base.clone());
        }
        base + self.delta()?
    }

    /// `x·W + b + (α/r)·(drop(x)·Aᵀ)·Bᵀ`: the layer-level path, with LoRA's input dropout when
    /// `src` is Some (training) and p > 0.
    pub fn forward(&self, x: &Tensor, base: &Tensor, bias: Option<&Tensor>, src: Option<MaskSource>) -> Result<Tensor> {
        let y = linear(x, base, bias, self.layout)?;
        if self.is_merged() {
            return Ok(y);
        }
        if src.is_some() && self.dropout.p > 0.0 {
            return y + self.low_rank(x, src)?.expect("not merged");
        }
        // No input dropout: the term as one op (crate::low_rank).
        crate::low_rank::low_rank_add(&y, x, self.a.as_tensor(), self.b.as_tensor(), self.scale)
    }

    /// The adapter's own term `(α/r)·(drop(x)·Aᵀ)·Bᵀ` (…, out), or None once merged (the base
    /// weight holds it then). Two thin products: over a frozen base this is all a LoRA layer
    /// adds to the backward (no product the size of W).
    pub fn low_rank(&self, x: &Tensor, src: Option<MaskSource>) -> Result<Option<Tensor>> {
        if self.is_merged() {
            return Ok(None);
        }
        let xd = self.dropout.forward(x, src)?;
        let low = linear(&linear(&xd, self.a.as_tensor(), None, WeightLayout::OutIn)?, self.b.as_tensor(), None, WeightLayout::OutIn)?;
        Ok(Some(low.affine(self.scale, 0.0)?))
    }

    pub fn is_merged(&self) -> bool {
        self.merged.load(Ordering::SeqCst)
    }

    /// Fold `(α/r)·ΔW` into `base` (the model's own weight variable).
    pub fn merge(&self, base: &Var) -> Result<()> {
        if !self.is_merged() {
            base.set(&(base.as_tensor() + self.delta()?)?)?;
            self.merged.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Take `(α/r)·ΔW` out of `base` again.
    pub fn unmerge(&self, base: &Var) -> Result<()> {
        if self.is_merged() {
            base.set(&(base.as_tensor() - self.delta()?)?)?;
            self.merged.store(false, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// The adapters of a model: one [`LoraLayer`] per targeted site, their tensors in their own
/// [`ParamStore`] (the only parameters a LoRA run trains and saves), named
/// `{module}.lora_A.weight` / `{module}.lora_B.weight`.
pub struct Lora {
    pub cfg: LoraConfig,
    params: ParamStore,
    layers: BTreeMap<String, LoraLayer>,
}

impl Lora {
    /// Adapters for the `sites` that `cfg` targets, A drawn from `seed`, B zero. Errors when a
    /// setting is out of range or no site matches (naming the sites there are).
    pub fn new(cfg: &LoraConfig, sites: &[LinearSite], seed: u64, dev: &Device) -> jielong_core::Result<Self> {
        use jielong_core::Error;
        if cfg.rank == 0 {
            return Err(Error::input("LoRA rank must be at least 1 (--lora-rank)"));
        }
        if !(cfg.alpha.is_finite() && cfg.alpha > 0.0) {
            return Err(Error::input(format!("LoRA alpha must be positive, got {} (--lora-alpha)", cfg.alpha)));
        }
        if !(0.0..1.0).contains(&cfg.dropout) {
            return Err(Error::input(format!("LoRA dropout must be in [0, 1), got {} (--lora-dropout)", cfg.dropout)));
        }
        let params = ParamStore::new(seed);
        let vb = params.var_builder(dev);
        let mut layers = BTreeMap::new();
        for s in sites.iter().filter(|s| cfg.targets_module(&s.name)) {
            if cfg.rank > s.n_in.min(s.n_out) {
                return Err(Error::input(format!("LoRA rank {} is larger than layer {} ({} → {}): lower --lora-rank", cfg.rank, s.name, s.n_in, s.n_out)));
            }
            let bound = 1.0 / (s.n_in as f64).sqrt();
            vb.get_with_hints((cfg.rank, s.n_in), &format!("{}.lora_A.weight", s.name), Init::Uniform { lo: -bound, up: bound })?;
            vb.get_with_hints((s.n_out, cfg.rank), &format!("{}.lora_B.weight", s.name), Init::Const(0.0))?;
            let vars: BTreeMap<String, Var> = params.vars().into_iter().collect();
            let var = |n: &str| vars[&format!("{}.{n}.weight", s.name)].clone();
            let layer = LoraLayer {
                a: var("lora_A"),
                b: var("lora_B"),
                scale: cfg.scale(),
                dropout: Dropout { p: cfg.dropout },
                layout: s.layout,
                merged: AtomicBool::new(false),
            };
            layers.insert(s.name.clone(), layer);
        }
        if layers.is_empty() {
            let names: Vec<&str> = sites.iter().map(|s| s.name.rsplit('.').next().unwrap_or(&s.name)).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            return Err(Error::input(format!("LoRA targets {:?} match no linear layer of this model; it has {names:?} (or use all-linear)", cfg.targets)));
        }
        Ok(Self { cfg: cfg.clone(), params, layers })
    }

    /// The trainable tensors (A and B of every adapted layer).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The adapter of module `name`, if it has one.
    pub fn layer(&self, name: &str) -> Option<&LoraLayer> {
        self.layers.get(name)
    }

    /// The adapted module names, sorted.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.layers.keys().map(String::as_str)
    }

    /// The weight module `name` computes with: `base` adapted, or `base` itself when the module
    /// has no adapter.
    pub fn weight(&self, name: &str, base: &Tensor) -> Result<Tensor> {
        match self.layers.get(name) {
            Some(l) => l.effective(base),
            None => Ok(base.clone()),
        }
    }

    /// Fold every adapter into the base weights held by `base` (`{module}.weight`).
    pub fn merge(&self, base: &ParamStore) -> jielong_core::Result<()> {
        self.each_base(base, |l, v| l.merge(v))
    }

    /// Undo [`Lora::merge`].
    pub fn unmerge(&self, base: &ParamStore) -> jielong_core::Result<()> {
        self.each_base(base, |l, v| l.unmerge(v))
    }

    fn each_base(&self, base: &ParamStore, f: impl Fn(&LoraLayer, &Var) -> Result<()>) -> jielong_core::Result<()> {
        let vars: BTreeMap<String, Var> = base.vars().into_iter().collect();
        for (name, layer) in &self.layers {
            let v = vars.get(&format!("{name}.weight")).ok_or_else(|| jielong_core::Error::Other(format!("LoRA: the base has no weight {name}.weight")))?;
            f(layer, v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;

    fn cfg(targets: &[&str]) -> LoraConfig {
        LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, targets: targets.iter().map(|s| s.to_string()).collect() }
    }

    fn sites() -> Vec<LinearSite> {
        vec![
            LinearSite { name: "h.0.attn.c_attn".into(), n_in: 16, n_out: 48, layout: WeightLayout::InOut },
            LinearSite { name: "h.0.mlp.c_proj".into(), n_in: 64, n_out: 16, layout: WeightLayout::InOut },
            LinearSite { name: "layers.0.q_proj".into(), n_in: 16, n_out: 24, layout: WeightLayout::OutIn },
        ]
    }

    /// Random non-zero B, so that the adapter does something.
    fn perturb(l: &Lora) {
        for (_, v) in l.params().vars() {
            v.set(&Tensor::randn(0f32, 0.3, v.shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }

    #[test]
    fn lora_targets_match_whole_names_or_endings() {
        let dev = Device::Cpu;
        let l = Lora::new(&cfg(&["c_attn", "q_proj"]), &sites(), 1, &dev).unwrap();
        assert_eq!(l.modules().collect::<Vec<_>>(), ["h.0.attn.c_attn", "layers.0.q_proj"]);
        assert_eq!(Lora::new(&cfg(&["all-linear"]), &sites(), 1, &dev).unwrap().modules().count(), 3);
        // `proj` is not a name ending at a dot: nothing matches, and the error lists the names.
        let e = Lora::new(&cfg(&["proj"]), &sites(), 1, &dev).err().unwrap();
        assert!(e.is_user_error() && e.to_string().contains("c_attn"), "{e}");
        let e = Lora::new(&LoraConfig { rank: 0, ..cfg(&["c_attn"]) }, &sites(), 1, &dev).err().unwrap();
        assert!(e.to_string().contains("rank"), "{e}");
    }

    #[test]
    fn lora_untrained_adapter_changes_nothing() {
        let dev = Device::Cpu;
        let l = Lora::new(&cfg(&["all-linear"]), &sites(), 1, &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (16, 48), &dev).unwrap();
        let eff = l.weight("h.0.attn.c_attn", &w).unwrap();
        assert_eq!(max_diff(&eff, &w), 0.0);
        // A is not zero (it must not be, or B would get no gradient).
        let a = l.layer("h.0.attn.c_attn").unwrap().a.as_tensor().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(a > 0.0);
    }

    #[test]
    fn lora_layer_path_equals_effective_weight_and_merged_weight() {
        let dev = Device::Cpu;
        let l = Lora::new(&cfg(&["all-linear"]), &sites(), 3, &dev).unwrap();
        perturb(&l);
        let base = ParamStore::new(5);
        let vb = base.var_builder(&dev);
        for s in sites() {
            let shape = if s.layout == WeightLayout::InOut { (s.n_in, s.n_out) } else { (s.n_out, s.n_in) };
            vb.get_with_hints(shape, &format!("{}.weight", s.name), Init::Randn { mean: 0.0, stdev: 0.5 }).unwrap();
        }
        let bases: BTreeMap<String, Var> = base.vars().into_iter().collect();
        for s in sites() {
            let layer = l.layer(&s.name).unwrap();
            let w = bases[&format!("{}.weight", s.name)].as_tensor().copy().unwrap();
            let x = Tensor::randn(0f32, 1.0, (3, 5, s.n_in), &dev).unwrap();
            let by_layer = layer.forward(&x, &w, None, None).unwrap();
            let by_weight = linear(&x, &l.weight(&s.name, &w).unwrap(), None, s.layout).unwrap();
            assert!(max_diff(&by_layer, &by_weight) <= 1e-5, "{}", s.name);
            let plain = linear(&x, &w, None, s.layout).unwrap();
            assert!(max_diff(&by_layer, &plain) > 1e-3, "the adapter must change {}", s.name);
        }
        // Merged: the base weights hold W + ΔW, the adapter adds nothing more; same outputs.
        let outs = |merged: bool| -> Vec<Tensor> {
            sites()
                .iter()
                .map(|s| {
                    let x = Tensor::ones((2, s.n_in), candle_core::DType::F32, &dev).unwrap();
                    let w = bases[&format!("{}.weight", s.name)].as_tensor();
                    assert_eq!(l.layer(&s.name).unwrap().is_merged(), merged);
                    linear(&x, &l.weight(&s.name, w).unwrap(), None, s.layout).unwrap()
                })
                .collect()
        };
        let before: Vec<Vec<f32>> = bases.values().map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect();
        let unmerged = outs(false);
        l.merge(&base).unwrap();
        let merged = outs(true);
        for (a, b) in unmerged.iter().zip(&merged) {
            assert!(max_diff(a, b) <= 1e-5, "merged differs by {}", max_diff(a, b));
        }
        l.unmerge(&base).unwrap();
        for (v, b) in bases.values().zip(&before) {
            let now: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let d = now.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(d <= 1e-5, "unmerge left {d}");
        }
    }

    #[test]
    fn lora_dropout_applies_on_the_layer_path_in_training_only() {
        let dev = Device::Cpu;
        let l = Lora::new(&LoraConfig { dropout: 0.5, ..cfg(&["q_proj"]) }, &sites(), 3, &dev).unwrap();
        perturb(&l);
        let layer = l.layer("layers.0.q_proj").unwrap();
        let w = Tensor::randn(0f32, 1.0, (24, 16), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 7, 16), &dev).unwrap();
        let eval = layer.forward(&x, &w, None, None).unwrap();
        let train = layer.forward(&x, &w, None, Some(MaskSource { seed: 1, site: 0, first_row: 0 })).unwrap();
        assert!(max_diff(&eval, &linear(&x, &layer.effective(&w).unwrap(), None, WeightLayout::OutIn).unwrap()) <= 1e-5);
        assert!(max_diff(&eval, &train) > 1e-3, "dropout must change the adapter's input in training");
    }

    #[test]
    fn lora_training_moves_a_and_b_and_never_the_base() {
        use candle_nn::Optimizer;
        let dev = Device::Cpu;
        let l = Lora::new(&cfg(&["q_proj"]), &sites(), 3, &dev).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (24, 16), &dev).unwrap()).unwrap();
        let w0: Vec<f32> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let x = Tensor::randn(0f32, 1.0, (8, 16), &dev).unwrap();
        let target = Tensor::randn(0f32, 1.0, (8, 24), &dev).unwrap();
        let trainable: Vec<Var> = l.params().vars().into_iter().map(|(_, v)| v).collect();
        let mut opt = candle_nn::SGD::new(trainable, 0.05).unwrap();
        let loss = |_: ()| {
            let y = linear(&x, &l.weight("layers.0.q_proj", w.as_tensor()).unwrap(), None, WeightLayout::OutIn).unwrap();
            (y - &target).unwrap().sqr().unwrap().mean_all().unwrap()
        };
        let first = loss(()).to_scalar::<f32>().unwrap();
        for _ in 0..20 {
            opt.backward_step(&loss(())).unwrap();
        }
        let last = loss(()).to_scalar::<f32>().unwrap();
        assert!(last < first, "LoRA training did not lower the loss ({first} → {last})");
        let b = l.layer("layers.0.q_proj").unwrap().b.as_tensor().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(b > 0.0, "B stayed zero");
        assert_eq!(w.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(), w0, "the base weight changed");
    }
}
