//! The engine thread and its queue: continuous batching.
//!
//! One OS thread owns the model. HTTP tasks turn requests into `Job`s (one per sequence: a
//! request with `n = 4` is four jobs) and hand them to the `Scheduler`. Between two decoding
//! steps the thread admits waiting jobs up to `parallel` live sequences, drops the ones whose
//! client has gone (their event channel is closed, or the HTTP task set `cancel` because a stop
//! string appeared), and then advances every live sequence by one token in a single
//! `Engine::step`, which is one batched forward pass over sequences of different lengths. A
//! sequence that is still reading its prompt and one deep into its reply share that pass: a
//! new request never waits for the others to finish, and a finished one frees its slot at once.
//!
//! A request with `beams > 1` is one job run as a `BeamSearch`: its beams join the same
//! batched step as every other live sequence (each beam takes one of the `parallel` slots),
//! and when the search ends the best `n` hypotheses are sent as the choices, all their tokens
//! at once (so with `stream: true` they arrive in one burst at the end).
//!
//! The queue in front of the thread is bounded: `submit` refuses work that would not fit
//! (the HTTP layer answers 429), so a burst of clients cannot grow memory without limit.

use crate::metrics::Metrics;
use jielong_generate::{BeamOptions, BeamSearch, Engine, Finish, SamplingConfig, Sequence};
use jielong_generate::sampler::Chain;
use jielong_models::CausalLm;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// The model's log-probability of one emitted token and of its most likely alternatives.
#[derive(Debug, Clone)]
pub struct TokenLogprob {
    pub logprob: f32,
    /// (id, log-probability), most likely first.
    pub top: Vec<(u32, f32)>,
}

/// What the engine thread tells the HTTP task about one sequence.
#[derive(Debug)]
pub enum Event {
    Token { id: u32, logprob: Option<TokenLogprob> },
    /// The sequence ended by itself (end-of-text or `max_tokens`).
    Done { finish: Finish },
    /// The sequence was ended by the server (a failed step, or shutdown).
    Aborted(String),
}

/// One sequence to decode.
pub struct Job {
    /// Which choice of its request (`n > 1` makes several jobs).
    pub index: usize,
    pub prompt: Vec<u32>,
    pub sampling: SamplingConfig,
    pub max_tokens: usize,
    /// Ids that end the sequence (the end-of-text id, unless the request ignores it).
    pub stop_ids: Vec<u32>,
    /// Report log-probabilities, with this many alternatives.
    pub logprobs: Option<usize>,
    /// Beam search with this many beams (1: sample with `sampling`).
    pub beams: usize,
    /// Choices this job answers for (a beam search's best hypotheses; 1 when sampling), sent
    /// as indices `index..index + choices`.
    pub choices: usize,
    pub tx: UnboundedSender<(usize, Event)>,
    /// Set by the HTTP task when it needs no more tokens (a stop string appeared).
    pub cancel: Arc<AtomicBool>,
}

impl Job {
    fn gone(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.tx.is_closed()
    }

    /// Tell every choice of this job that the server ended it.
    fn abort(&self, why: &str) {
        for i in self.index..self.index + self.choices.max(1) {
            let _ = self.tx.send((i, Event::Aborted(why.to_string())));
        }
    }
}

/// The queue would overflow: the caller should answer 429.
#[derive(Debug)]
pub struct Busy {
    pub waiting: usize,
}

struct State {
    waiting: VecDeque<Job>,
    live: usize,
    shutdown: bool,
}

/// The hand-over point between HTTP tasks and the engine thread.
pub struct Scheduler {
    state: Mutex<State>,
    wake: Condvar,
    /// Most sequences decoded together.
    pub parallel: usize,
    /// Most sequences waiting for a slot.
    pub queue: usize,
    metrics: Arc<Metrics>,
}

impl Scheduler {
    pub fn new(parallel: usize, queue: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            state: Mutex::new(State { waiting: VecDeque::new(), live: 0, shutdown: false }),
            wake: Condvar::new(),
            parallel: parallel.max(1),
            queue,
            metrics,
        }
    }

    /// Queue all of a request's jobs, or none of them.
    pub fn submit(&self, jobs: Vec<Job>) -> Result<(), Busy> {
        let mut st = self.state.lock().expect("scheduler lock");
        // At most `parallel` decoding and `queue` waiting, all told.
        let room = (self.parallel + self.queue).saturating_sub(st.live + st.waiting.len());
        if st.shutdown || jobs.len() > room {
            return Err(Busy { waiting: st.waiting.len() });
        }
        st.waiting.extend(jobs);
        self.metrics.set_queue(st.waiting.len(), st.live);
        self.wake.notify_one();
        Ok(())
    }

    /// Stop admitting work; the engine thread finishes live sequences for up to `grace`, then
    /// aborts the rest, and returns.
    pub fn shutdown(&self) {
        let mut st = self.state.lock().expect("scheduler lock");
        st.shutdown = true;
        self.wake.notify_all();
    }

    /// Sequences waiting and decoding now.
    pub fn load(&self) -> (usize, usize) {
        let st = self.state.lock().expect("scheduler lock");
        (st.waiting.len(), st.live)
    }
}

/// A sequence being decoded.
struct Live {
    job: Job,
    seq: Sequence,
    chain: Chain,
    started: Instant,
    last: Instant,
}

/// A beam search being decoded.
struct Beaming {
    job: Job,
    search: BeamSearch,
    started: Instant,
}

/// The engine thread's body: decode until `shutdown`, then finish or abort what is left.
pub fn run(lm: &dyn CausalLm, vocab_limit: usize, sched: &Scheduler, grace: Duration) {
    let engine = Engine::new(lm, &candle_core::Device::Cpu).with_vocab_limit(vocab_limit);
    let metrics = &sched.metrics;
    let mut live: Vec<Live> = Vec::new();
    let mut beaming: Vec<Beaming> = Vec::new();
    let mut shutdown_at: Option<Instant> = None;
    loop {
        // Admit waiting jobs between steps; sleep when there is nothing to do.
        {
            let mut st = sched.state.lock().expect("scheduler lock");
            loop {
                // Slots in use: one per sampled sequence, one per beam.
                let used = |live: &Vec<Live>, beaming: &Vec<Beaming>| live.len() + beaming.iter().map(|b| b.job.beams).sum::<usize>();
                while used(&live, &beaming) < sched.parallel {
                    let Some(job) = st.waiting.pop_front() else { break };
                    if job.gone() {
                        metrics.cancelled();
                        continue;
                    }
                    if job.beams > 1 {
                        if let Some(b) = admit_beams(&engine, job) {
                            beaming.push(b);
                        }
                    } else if let Some(l) = admit(&engine, job) {
                        live.push(l);
                    }
                }
                if st.shutdown && shutdown_at.is_none() {
                    shutdown_at = Some(Instant::now());
                    for job in st.waiting.drain(..) {
                        job.abort("the server is shutting down");
                    }
                }
                st.live = live.len() + beaming.len();
                metrics.set_queue(st.waiting.len(), st.live);
                if !live.is_empty() || !beaming.is_empty() {
                    break;
                }
                if st.shutdown {
                    return;
                }
                st = sched.wake.wait(st).expect("scheduler lock");
            }
        }
        if shutdown_at.is_some_and(|t| t.elapsed() >= grace) {
            for l in live.drain(..) {
                l.job.abort("the server is shutting down");
            }
            for b in beaming.drain(..) {
                b.job.abort("the server is shutting down");
            }
            continue;
        }
        // A client that hung up (or whose stop string appeared) costs nothing from here on.
        let before = live.len() + beaming.len();
        live.retain(|l| !l.job.gone());
        beaming.retain(|b| !b.job.gone());
        for _ in live.len() + beaming.len()..before {
            metrics.cancelled();
        }
        if live.is_empty() && beaming.is_empty() {
            continue;
        }
        let t0 = Instant::now();
        // Sampled sequences first, then every running beam of every search: one forward pass.
        let rows = {
            let mut batch: Vec<&mut Sequence> = live.iter_mut().map(|l| &mut l.seq).collect();
            for b in beaming.iter_mut() {
                batch.extend(b.search.sequences_mut());
            }
            engine.step(&mut batch)
        };
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                for l in live.drain(..) {
                    l.job.abort(&format!("decoding failed: {e}"));
                }
                for b in beaming.drain(..) {
                    b.job.abort(&format!("decoding failed: {e}"));
                }
                continue;
            }
        };
        metrics.step(rows.len(), t0.elapsed());
        let (sampled, mut beam_rows) = rows.split_at(live.len());
        for b in beaming.iter_mut() {
            let (mine, rest) = beam_rows.split_at(b.search.n_running());
            b.search.advance(mine);
            beam_rows = rest;
        }
        let mut i = 0;
        while i < beaming.len() {
            if beaming[i].search.is_finished() {
                finish_beams(beaming.swap_remove(i), metrics);
            } else {
                i += 1;
            }
        }
        // Sampling (a softmax, and a sort for top-k/top-p, over the whole vocabulary) costs about
        // as much per sequence as its share of a batched forward pass: spread it over the cores.
        let picks: Vec<(u32, Option<TokenLogprob>)> = live
            .par_iter_mut()
            .zip(sampled.par_iter())
            .with_min_len(2)
            .map(|(l, row)| {
                let id = l.chain.sample(row);
                (id, l.job.logprobs.map(|k| logprobs(row, id, k)))
            })
            .collect();
        for (l, (id, logprob)) in live.iter_mut().zip(picks) {
            let now = Instant::now();
            if l.seq.generated().is_empty() {
                metrics.first_token(now - l.started);
            } else {
                metrics.inter_token(now - l.last);
            }
            l.last = now;
            if l.job.stop_ids.contains(&id) {
                let _ = l.job.tx.send((l.job.index, Event::Done { finish: Finish::Stop }));
                l.job.cancel.store(true, Ordering::Relaxed);
                continue;
            }
            l.seq.push(id);
            metrics.tokens(1);
            let _ = l.job.tx.send((l.job.index, Event::Token { id, logprob }));
            if l.seq.generated().len() >= l.job.max_tokens {
                let _ = l.job.tx.send((l.job.index, Event::Done { finish: Finish::Length }));
                l.job.cancel.store(true, Ordering::Relaxed);
            }
        }
        // Finished sequences leave (their `cancel` is set); `gone` is checked again next step.
        live.retain(|l| !l.job.cancel.load(Ordering::Relaxed));
    }
}

/// The job as a beam search, or None after telling its client why not.
fn admit_beams(engine: &Engine, job: Job) -> Option<Beaming> {
    let opts = BeamOptions {
        beams: job.beams,
        max_tokens: job.max_tokens,
        // Hugging Face `generate`'s defaults.
        length_penalty: 1.0,
        early_stopping: false,
        stop_ids: job.stop_ids.clone(),
        no_repeat_ngram: 0,
    };
    match engine.sequence(job.prompt.clone()).and_then(|seq| BeamSearch::new(seq, opts)) {
        Ok(search) => Some(Beaming { job, search, started: Instant::now() }),
        Err(e) => {
            job.abort(&e.to_string());
            None
        }
    }
}

/// Send the best hypotheses of a finished search as the job's choices, best first.
fn finish_beams(b: Beaming, metrics: &Metrics) {
    metrics.first_token(b.started.elapsed());
    let hyps = b.search.finish();
    for c in 0..b.job.choices {
        let index = b.job.index + c;
        let finish = match hyps.get(c) {
            Some(h) => {
                for &id in &h.tokens {
                    let _ = b.job.tx.send((index, Event::Token { id, logprob: None }));
                }
                metrics.tokens(h.tokens.len());
                if h.finished { Finish::Stop } else { Finish::Length }
            }
            None => Finish::Length,
        };
        let _ = b.job.tx.send((index, Event::Done { finish }));
    }
}

/// The job as a live sequence, or None after telling its client why not.
fn admit(engine: &Engine, job: Job) -> Option<Live> {
    let made = engine.sequence(job.prompt.clone()).and_then(|seq| Ok((seq, job.sampling.build(&job.prompt, 0)?)));
    let (seq, chain) = match made {
        Ok(x) => x,
        Err(e) => {
            let _ = job.tx.send((job.index, Event::Aborted(e.to_string())));
            return None;
        }
    };
    let now = Instant::now();
    if job.max_tokens == 0 {
        let _ = job.tx.send((job.index, Event::Done { finish: Finish::Length }));
        job.cancel.store(true, Ordering::Relaxed);
    }
    Some(Live { job, seq, chain, started: now, last: now })
}

/// log softmax of the model's row at `id`, and the `k` most likely ids.
pub fn logprobs(row: &[f32], id: u32, k: usize) -> TokenLogprob {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + row.iter().map(|&x| ((x - max) as f64).exp()).sum::<f64>().ln() as f32;
    let mut top: Vec<(u32, f32)> = Vec::new();
    if k > 0 {
        let mut idx: Vec<u32> = (0..row.len() as u32).collect();
        let k = k.min(idx.len());
        idx.select_nth_unstable_by(k - 1, |&a, &b| row[b as usize].total_cmp(&row[a as usize]));
        idx.truncate(k);
        idx.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
        top = idx.into_iter().map(|i| (i, row[i as usize] - lse)).collect();
    }
    TokenLogprob { logprob: row[id as usize] - lse, top }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_match_a_softmax_by_hand() {
        let row = [1.0f32, 3.0, 2.0, 0.0];
        let z: f32 = row.iter().map(|x| x.exp()).sum();
        let lp = logprobs(&row, 2, 2);
        assert!((lp.logprob - (2f32.exp() / z).ln()).abs() < 1e-6);
        assert_eq!(lp.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((lp.top[0].1 - (3f32.exp() / z).ln()).abs() < 1e-6);
        assert!(logprobs(&row, 0, 0).top.is_empty());
    }
}
