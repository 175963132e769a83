//! A chain of stages, itself a stage. With `explain` on it records, after every stage, the top
//! candidates and their probabilities, which `jielong generate --explain` prints.

use super::{Candidates, Sampler};

/// The distribution as one stage left it.
#[derive(Debug, Clone)]
pub struct StageView {
    pub stage: String,
    /// Candidates still in the list.
    pub n_candidates: usize,
    /// The most likely few: (id, probability over the remaining candidates).
    pub top: Vec<(u32, f32)>,
}

#[derive(Default)]
pub struct Chain {
    stages: Vec<Box<dyn Sampler>>,
    explain: usize,
    /// Filled by each `apply` when explaining: the model's distribution, then one view per stage.
    pub views: Vec<StageView>,
}

impl Chain {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(mut self, stage: impl Sampler + 'static) -> Self {
        self.stages.push(Box::new(stage));
        self
    }

    /// Record the `top_n` most likely candidates after every stage (0 = off).
    pub fn explain(mut self, top_n: usize) -> Self {
        self.explain = top_n;
        self
    }

    pub fn stage_names(&self) -> Vec<String> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Choose the next id from a row of logits, and accept it.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let mut c = Candidates::from_logits(logits);
        self.apply(&mut c);
        let id = match c.chosen() {
            Some(id) => id,
            None => {
                // No selecting stage ran: take the most likely remaining candidate.
                c.sort();
                c.items.first().map_or(0, |x| x.id)
            }
        };
        self.accept(id);
        id
    }

    fn view(&self, stage: String, c: &Candidates) -> StageView {
        let mut c = c.clone();
        let selected = c.chosen();
        c.softmax();
        let mut top: Vec<(u32, f32)> = c.items.iter().take(self.explain).map(|x| (x.id, x.p)).collect();
        if let Some(id) = selected {
            if !top.iter().any(|t| t.0 == id) {
                let p = c.items.iter().find(|x| x.id == id).map_or(0.0, |x| x.p);
                top.push((id, p));
            }
        }
        StageView { stage, n_candidates: c.items.len(), top }
    }
}

impl Sampler for Chain {
    fn name(&self) -> String {
        format!("chain[{}]", self.stage_names().join(" → "))
    }

    fn apply(&mut self, c: &mut Candidates) {
        self.views.clear();
        if self.explain > 0 {
            let v = self.view("model".into(), c);
            self.views.push(v);
        }
        for i in 0..self.stages.len() {
            self.stages[i].apply(c);
            if self.explain > 0 {
                let v = self.view(self.stages[i].name(), c);
                self.views.push(v);
            }
        }
    }

    fn accept(&mut self, id: u32) {
        self.stages.iter_mut().for_each(|s| s.accept(id));
    }

    fn reset(&mut self) {
        self.stages.iter_mut().for_each(|s| s.reset());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{Dist, TopK, TopP};

    #[test]
    fn chain_applies_stages_in_order_and_explains_each() {
        // top_k(3) then top_p(0.6): {0.4, 0.3, 0.15} renormalised to (0.47, 0.35, 0.18) →
        // top_p keeps the first two (0.47 < 0.6 ≤ 0.82).
        let logits: Vec<f32> = [0.1f32, 0.4, 0.05, 0.3, 0.15].iter().map(|p| p.ln()).collect();
        let mut chain = Chain::new().push(TopK(3)).push(TopP(0.6)).push(Dist::new(1)).explain(5);
        for _ in 0..50 {
            let id = chain.sample(&logits);
            assert!(id == 1 || id == 3, "drew {id}");
        }
        let names: Vec<&str> = chain.views.iter().map(|v| v.stage.as_str()).collect();
        assert_eq!(names, vec!["model", "top_k(3)", "top_p(0.6)", "dist(seed=1)"]);
        assert_eq!(chain.views[1].n_candidates, 3);
        assert!((chain.views[1].top[0].1 - 0.4 / 0.85).abs() < 1e-5);
        assert_eq!(chain.views[2].n_candidates, 2);
        assert!((chain.views[2].top[0].1 - 0.4 / 0.7).abs() < 1e-5);
    }
}
