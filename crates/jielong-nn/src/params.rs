//! `ParamStore`: the trainable parameters of a model, by name.
//!
//! It is a candle `VarBuilder` backend, so models are built the usual way (`Model::new(&cfg, vb)`),
//! but new parameters are initialised from jielong's seeded generator: the generator for each
//! tensor is derived from (seed, tensor name), so initial weights depend only on the seed and
//! the name, never on construction order or on thread scheduling. candle's own CPU `randn`
//! cannot be seeded.

use candle_core::{safetensors as cst, DType, Device, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use jielong_core::{Error, Result, Rng};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct ParamStore {
    seed: u64,
    vars: Arc<Mutex<BTreeMap<String, Var>>>,
    /// Hand out the parameters detached (see [`ParamStore::frozen`]).
    frozen: bool,
}

fn name_key(name: &str) -> u64 {
    // FNV-1a: stable across runs and platforms.
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn init_tensor(seed: u64, name: &str, shape: &Shape, init: Init, dev: &Device) -> candle_core::Result<Tensor> {
    let n = shape.elem_count();
    let mut rng = Rng::derive(seed, &[name_key(name)]);
    let data: Vec<f32> = match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Randn { mean, stdev } => (0..n).map(|_| mean as f32 + stdev as f32 * rng.normal()).collect(),
        Init::Uniform { lo, up } => (0..n).map(|_| lo as f32 + (up - lo) as f32 * rng.next_f32()).collect(),
        Init::Kaiming { .. } => {
            return Err(candle_core::Error::Msg(format!("{name}: Kaiming init is not supported by ParamStore")))
        }
    };
    Tensor::from_vec(data, shape.clone(), dev)
}

impl candle_nn::var_builder::SimpleBackend for ParamStore {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut vars = self.vars.lock().expect("param store lock");
        if let Some(v) = vars.get(name) {
            if v.shape() != &s {
                candle_core::bail!("{name}: shape {:?} but the model expects {s:?}", v.shape());
            }
            return Ok(self.hand_out(&v.as_tensor().to_dtype(dtype)?));
        }
        let var = Var::from_tensor(&init_tensor(self.seed, name, &s, h, dev)?.to_dtype(dtype)?)?;
        let t = self.hand_out(var.as_tensor());
        vars.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        match self.vars.lock().expect("param store lock").get(name) {
            Some(v) => Ok(self.hand_out(&v.as_tensor().to_dtype(dtype)?)),
            None => candle_core::bail!("{name}: no such parameter"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.vars.lock().expect("param store lock").contains_key(name)
    }
}

impl ParamStore {
    pub fn new(seed: u64) -> Self {
        Self { seed, vars: Arc::new(Mutex::new(BTreeMap::new())), frozen: false }
    }

    /// A store whose `VarBuilder` hands the model detached views of its parameters: the same
    /// storage (loading or merging into a variable changes what the model reads), but outside
    /// autograd, so a model built from it is a frozen base. LoRA, prefix and prompt tuning
    /// build their base this way: the backward then skips every frozen weight's gradient
    /// product (the fused kernels check `Tensor::track_op`) and the embedding tables' scatter,
    /// as PyTorch skips parameters with `requires_grad = False`.
    pub fn frozen(seed: u64) -> Self {
        Self { frozen: true, ..Self::new(seed) }
    }

    fn hand_out(&self, t: &Tensor) -> Tensor {
        if self.frozen {
            t.detach()
        } else {
            t.clone()
        }
    }

    /// A `VarBuilder` that creates (or returns) parameters in this store.
    pub fn var_builder(&self, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, dev.clone())
    }

    /// All parameters, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.vars.lock().expect("param store lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn n_params(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Write every parameter to a safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: Vec<(String, Tensor)> = self.vars().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
        save_tensors(path, &tensors)
    }

    /// Overwrite parameters with the tensors of a safetensors file. Every parameter of the model
    /// must be present with the right shape; `rename` maps a file name to ours (or None to skip).
    pub fn load(&self, path: &Path, rename: impl Fn(&str) -> Option<String>) -> Result<()> {
        let tensors = load_tensors(path)?;
        let vars = self.vars.lock().expect("param store lock");
        let mut seen = 0usize;
        for (file_name, t) in tensors {
            let Some(name) = rename(&file_name) else { continue };
            let Some(var) = vars.get(&name) else {
                return Err(Error::format(path, format!("holds `{file_name}`, which this model does not have: is the config right?")));
            };
            if var.shape() != t.shape() {
                return Err(Error::format(path, format!(
                    "`{file_name}` has shape {:?} but the model expects {:?}: the checkpoint and config disagree",
                    t.dims(), var.dims()
                )));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
            seen += 1;
        }
        if seen != vars.len() {
            let missing: Vec<_> = vars.keys().take(3).cloned().collect();
            return Err(Error::format(path, format!(
                "holds {seen} of the model's {} parameters (it expects e.g. {missing:?}); the file is incomplete or for another model",
                vars.len()
            )));
        }
        Ok(())
    }
}

/// Save named tensors to safetensors atomically (write a temporary file, then rename).
pub fn save_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let tmp = jielong_core::fs::tmp_sibling(path);
    let map: std::collections::HashMap<String, Tensor> = tensors.iter().cloned().collect();
    if let Err(e) = cst::save(&map, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Load every tensor of a safetensors file (on the CPU), with a clear error for a missing or
/// foreign file.
pub fn load_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.exists() {
        return Err(Error::input(format!("{}: not found", path.display())));
    }
    let map = cst::load(path, &Device::Cpu)
        .map_err(|e| Error::format(path, format!("not a readable safetensors file ({e})")))?;
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_init_depends_on_seed_and_name_only() {
        let dev = Device::Cpu;
        let make = |seed, order: &[&str]| {
            let ps = ParamStore::new(seed);
            let vb = ps.var_builder(&dev);
            for n in order {
                vb.get_with_hints((4, 3), n, Init::Randn { mean: 0.0, stdev: 1.0 }).unwrap();
            }
            ps.vars().into_iter().map(|(k, v)| (k, v.as_tensor().to_vec2::<f32>().unwrap())).collect::<Vec<_>>()
        };
        assert_eq!(make(1, &["a", "b"]), make(1, &["b", "a"]));
        assert_ne!(make(1, &["a"]), make(2, &["a"]));
    }

    #[test]
    fn params_save_load_round_trip_and_reject_mismatch() {
        let dev = Device::Cpu;
        let dir = std::env::temp_dir().join(format!("jl-params-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = ParamStore::new(1);
        a.var_builder(&dev).get_with_hints((2, 2), "w", Init::Randn { mean: 0.0, stdev: 1.0 }).unwrap();
        a.save(&dir.join("m.safetensors")).unwrap();
        let b = ParamStore::new(2);
        b.var_builder(&dev).get_with_hints((2, 2), "w", Init::Const(0.0)).unwrap();
        b.load(&dir.join("m.safetensors"), |n| Some(n.to_string())).unwrap();
        assert_eq!(
            a.vars()[0].1.as_tensor().to_vec2::<f32>().unwrap(),
            b.vars()[0].1.as_tensor().to_vec2::<f32>().unwrap()
        );
        let c = ParamStore::new(2);
        c.var_builder(&dev).get_with_hints((3, 2), "w", Init::Const(0.0)).unwrap();
        let e = c.load(&dir.join("m.safetensors"), |n| Some(n.to_string())).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("shape"), "{e}");
        std::fs::write(dir.join("junk.safetensors"), b"junk").unwrap();
        assert!(c.load(&dir.join("junk.safetensors"), |n| Some(n.to_string())).unwrap_err().is_user_error());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
