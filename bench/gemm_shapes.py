"""PyTorch (MKL) and NumPy (OpenBLAS) twin of crates/jielong-nn/examples/gemm_shapes.rs:
GFLOP/s of the linear-layer products of a training step, forward, dX and dW forms.

    .venv-bench/bin/python bench/gemm_shapes.py ROWS N_EMBD VOCAB [--cold]

--cold: a pass over 256 MB before every timed product, so operands come from memory (as in
a training step) rather than from the cache the previous repetition warmed.
"""
import sys, time, torch, numpy as np
m, c, v = map(int, sys.argv[1:4])
cold = "--cold" in sys.argv[4:]
junk = np.ones(64 << 20, dtype=np.float32) if cold else None
torch.set_num_threads(2)
def bench(name, fl, f):
    f(); best = 1e9
    for _ in range(7):
        if cold: junk.__iadd__(1.0)
        t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
    print(f"{name:40} {best*1e3:8.2f} ms {fl/best/1e9:7.1f} GFLOP/s")
for i, o in [(c, 3*c), (c, c), (c, 4*c), (4*c, c), (c, v)]:
    x = torch.randn(m, i); w = torch.randn(i, o); dy = torch.randn(m, o)
    fl = 2.0*m*i*o
    bench(f"torch fwd {m}x{i}·{i}x{o}", fl, lambda: x @ w)
    bench(f"torch dX", fl, lambda: dy @ w.t())
    bench(f"torch dW", fl, lambda: x.t() @ dy)
    xn, wn, dyn = x.numpy(), w.numpy(), dy.numpy()
    bench(f"numpy(openblas) fwd", fl, lambda: xn @ wn)
    bench(f"numpy dX", fl, lambda: dyn @ wn.T)
    bench(f"numpy dW", fl, lambda: xn.T @ dyn)
a = torch.randn(1024,1024); bench("torch 1024^3", 2*1024**3, lambda: a@a)
an = a.numpy(); bench("numpy 1024^3", 2*1024**3, lambda: an@an)
