"""Wall time per SMC run on the toy problem, quiet machine, one thread (10 seeds).

    .venv/bin/python benchmarks/toy_walltime.py     # needs runs/toy-gan/iter_0015000 (see toy_quality.py)
"""
import time, torch, statistics
torch.set_num_threads(1)
import cogenerate as cg
from cogenerate.checkpoint import load_checkpoint
from cogenerate.experiments.toy import toy_observation, reconstruction_error
G = load_checkpoint("runs/toy-gan/iter_0015000").modules["generator"]
obs, mask = toy_observation()
for budget, opts in [(11, {"candidates": 1000, "final_moves": 1000}), (21, {"candidates": 1000, "final_moves": 1000}), (51, {"candidates": 1000, "final_moves": 1000}), (51, {"final_moves": 1000})]:
    cg.complete(G, obs, mask, method=cg.SMC(**opts), chains=100, noise_std=0.05, leapfrog=10, max_grad_evals=budget)
    ts, fr = [], []
    for seed in range(10):
        t = time.perf_counter()
        out = cg.complete(G, obs, mask, method=cg.SMC(**opts), chains=100, noise_std=0.05, leapfrog=10, max_grad_evals=budget, seed=seed)
        ts.append(1000 * (time.perf_counter() - t))
        fr.append((reconstruction_error(out.samples[0]) < 0.01).float().mean().item())
    print(f"smc budget={budget} opts={opts} evals={out.grad_evals} median_ms={statistics.median(ts):.1f} frac_mean={statistics.mean(fr):.3f} sd={statistics.stdev(fr):.3f}")
