"""Compiled against eager HMC moves (issue 13): wall time, gradient rates and overhead.

One thread, repeats interleaved (eager, compiled, peer in rotating order) so that the load of
a shared machine affects every contender alike; the load average is recorded with each part.
Compilation is timed separately, in a fresh process with an empty inductor cache unless
``--warm-cache`` (the default cache dir is a new temporary folder).

    .venv/bin/python benchmarks/compiled.py toy       # toy SMC, 100 chains: eager, compiled, BlackJAX
    .venv/bin/python benchmarks/compiled.py rates     # gradient evaluations / s, 28×28 and 64×64 DCGANs
    .venv/bin/python benchmarks/compiled.py overhead  # sampler time / bare forward+backward passes

``toy`` needs ``runs/toy-gan/iter_0015000`` (see benchmarks/toy_quality.py) and the BlackJAX
venv of benchmarks/peer_blackjax.py (``.bench-venv``; skipped if missing). ``rates`` uses the
shipped ``fashion-mnist`` DCGAN and a 64×64 RGB DCGAN of width 64 (latent 100) built as in
benchmarks/default_regimes.py.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("toy", "rates", "overhead"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budgets", type=int, nargs="+", default=[11, 51, 101], help="toy: max_grad_evals")
    parser.add_argument("--candidates", type=int, nargs="+", default=[1000],
                        help="toy: forward-only candidates of the SMC start (one row per budget and count)")
    parser.add_argument("--chains", type=int, nargs="+", default=[8, 32, 128, 512, 1024], help="rates: chains")
    parser.add_argument("--models", nargs="+", default=["fm28", "dc64"], help="rates/overhead: fm28, dc64, toy")
    parser.add_argument("--leapfrog", type=int, default=5, help="rates: leapfrog steps per move")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="rates: stop repeating a cell after this")
    parser.add_argument("--warm-cache", action="store_true", help="use the default inductor cache (warm)")
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


ARGS = parse_args()
if not ARGS.warm_cache:  # before torch is imported: compile times are cold-cache times
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    atexit.register(shutil.rmtree, os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)

import torch  # noqa: E402

torch.set_num_threads(1)

import cogenerate as cg  # noqa: E402
from cogenerate.anneal.compiled import COMPILE_OPTIONS, make_mover  # noqa: E402
from cogenerate.anneal.tempering import evaluator, start  # noqa: E402
from cogenerate.api import make_posterior  # noqa: E402


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- toy: one SMC run, eager / compiled / BlackJAX, interleaved ------------------------------------

class Peer:
    """BlackJAX's jitted adaptive tempered SMC in its own venv, one run per request."""

    def __init__(self, step_size: float = 0.05):
        python = ROOT / ".bench-venv" / "bin" / "python"
        self.step_size = step_size
        self.process = None
        if not python.exists():
            return
        self.process = subprocess.Popen([str(python), str(ROOT / "benchmarks" / "peer_blackjax.py"), "--serve",
                                         "--step-sizes", str(step_size)], cwd=ROOT, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.header = json.loads(self.process.stdout.readline())

    def run(self, seed: int) -> dict:
        self.process.stdin.write(f"{seed} {self.step_size}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())


def toy() -> list[dict]:
    from cogenerate.checkpoint import load_checkpoint
    from cogenerate.experiments.toy import reconstruction_error, toy_observation

    generator = load_checkpoint(str(ROOT / "runs" / "toy-gan" / "iter_0015000")).modules["generator"]
    observed, mask = toy_observation()

    def ours(budget: int, compile: bool, seed: int, candidates: int = ARGS.candidates[0]) -> dict:
        settings = cg.SMC(candidates=candidates, final_moves=1000, compile=compile)
        started = time.perf_counter()
        out = cg.complete(generator, observed, mask, method=settings, chains=100, noise_std=0.05, leapfrog=10,
                          max_grad_evals=budget, seed=seed)
        elapsed = time.perf_counter() - started
        fraction = (reconstruction_error(out.samples[0]) < 0.01).float().mean().item()
        return {"wall_ms": 1000 * elapsed, "fraction": fraction, "grad_evals_per_chain": out.grad_evals}

    rows = []
    started = time.perf_counter()
    first = ours(ARGS.budgets[0], True, 0)
    compile_s = time.perf_counter() - started
    ours(ARGS.budgets[0], False, 0)  # warm-up of the eager path
    peer = Peer()
    print(json.dumps({"ours_first_compiled_call_s": round(compile_s, 2), "first_ms": first["wall_ms"],
                      "peer": getattr(peer, "header", None), "load": load()}), flush=True)
    for budget in ARGS.budgets:
        # One contender per (mode, candidates), BlackJAX once per budget; order rotates per seed.
        contenders = [(mode, n) for n in ARGS.candidates for mode in ("eager", "compiled")] + [("blackjax", None)]
        for mode, n in contenders:
            if mode != "blackjax":
                ours(budget, mode == "compiled", 0, n)  # warm-up (a new budget needs no new graph)
        results: dict[tuple, list[dict]] = {c: [] for c in contenders}
        loads = [load()]
        for seed in range(ARGS.repeats):
            shift = seed % len(contenders)
            for mode, n in contenders[shift:] + contenders[:shift]:
                if mode == "blackjax":
                    if peer.process is not None:
                        results[(mode, n)].append(peer.run(seed))
                else:
                    results[(mode, n)].append(ours(budget, mode == "compiled", seed, n))
        loads.append(load())
        for (mode, n), runs in results.items():
            if not runs:
                continue
            row = {"part": "toy", "sampler": mode, "budget": budget if mode != "blackjax" else None,
                   "candidates": n, "grad_evals_per_chain": statistics.mean(r["grad_evals_per_chain"] for r in runs),
                   "median_ms": round(median([r["wall_ms"] for r in runs]), 2),
                   "fraction_mean": round(statistics.mean(r["fraction"] for r in runs), 3),
                   "fraction_sd": round(statistics.stdev(r["fraction"] for r in runs), 3),
                   "repeats": len(runs), "load": " → ".join(loads)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    rows.append({"part": "toy", "compile_s": round(compile_s, 2),
                 "peer_compile_s": None if peer.process is None else round(peer.header["compile_s"], 2)})
    return rows


# --- rates: gradient evaluations per second of the HMC move -------------------------------------

def generator_of(name: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """(generator, one observed image (1, C, H, W), mask) with a centre box hidden."""
    if name == "fm28":
        from cogenerate.models.pretrained import load_pretrained

        g = load_pretrained("fashion-mnist").modules["generator"].eval()
        size, channels = 28, 1
    elif name == "dc64":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from default_regimes import recalibrated_dcgan

        g = recalibrated_dcgan(100, seed=0, draws=200)
        size, channels = 64, 3
    elif name == "toy":
        from cogenerate.models.toy import ToyGenerator

        torch.manual_seed(0)
        g = ToyGenerator().eval().requires_grad_(False)
        return g, torch.zeros(1, 2), torch.tensor([0.0, 1.0])
    else:
        raise SystemExit(f"unknown model {name!r}")
    for p in g.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        x = g(torch.randn(1, g.latent_dim, generator=torch.Generator().manual_seed(0)))
    mask = torch.ones(1, 1, size, size)
    mask[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 0
    return g, x, mask


def rates() -> list[dict]:
    rows = []
    for model in ARGS.models:
        g, x, mask = generator_of(model)
        for chains in ARGS.chains:
            posterior = make_posterior(g, x, mask, noise_std=0.1)
            rng = torch.Generator().manual_seed(0)
            z = posterior.sample_prior(rng, (1, chains))
            beta = torch.full((1,), 0.5)
            state = start(z, evaluator(posterior.log_prior_and_grad, posterior.log_likelihood_and_grad), beta)
            step = torch.full((1, chains), 0.05)
            movers = {name: make_mover(posterior, num_leapfrog=ARGS.leapfrog, compile=name == "compiled")
                      for name in ("eager", "compiled")}
            started = time.perf_counter()
            movers["compiled"](rng, state, beta, step_size=step)
            compile_s = time.perf_counter() - started
            movers["eager"](rng, state, beta, step_size=step)
            times: dict[str, list[float]] = {"eager": [], "compiled": []}
            loads = [load()]
            began = time.perf_counter()
            for r in range(ARGS.repeats):
                for name in (("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")):
                    t = time.perf_counter()
                    movers[name](rng, state, beta, step_size=step)
                    times[name].append(time.perf_counter() - t)
                if time.perf_counter() - began > ARGS.max_seconds and r >= 2:
                    break
            loads.append(load())
            evals = chains * ARGS.leapfrog
            row = {"part": "rates", "model": model, "chains": chains, "leapfrog": ARGS.leapfrog,
                   "eager_evals_per_s": round(evals / median(times["eager"]), 1),
                   "compiled_evals_per_s": round(evals / median(times["compiled"]), 1),
                   "speedup": round(median(times["eager"]) / median(times["compiled"]), 3),
                   "compile_s": round(compile_s, 1), "repeats": len(times["eager"]), "load": " → ".join(loads)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


# --- overhead: complete() over bare forward+backward passes, both compiled the same way --------------

def bare_passes(g: torch.nn.Module, z: torch.Tensor, leapfrog: int) -> torch.Tensor:
    """``leapfrog`` gradient evaluations of ``Σ G(z)²`` with respect to ``z`` by ``torch.func``, each
    feeding the next (as leapfrog steps do): the generator's work in one HMC move and nothing
    else, written as the compiled move writes it."""
    for _ in range(leapfrog):
        grad = torch.func.grad(lambda v: g(v).pow(2).sum())(z)
        z = z + 1e-3 * grad
    return z


def bare_passes_eager(g: torch.nn.Module, z: torch.Tensor, leapfrog: int) -> torch.Tensor:
    """The same passes as eager PyTorch writes them (``torch.autograd.grad``, as benchmarks/overhead.py)."""
    for _ in range(leapfrog):
        v = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(g(v).pow(2).sum(), v)
        z = z + 1e-3 * grad
    return z


def overhead() -> list[dict]:
    cells = {"toy": dict(chains=100, budget=1001, leapfrog=10), "fm28": dict(chains=8, budget=201, leapfrog=10),
             "dc64": dict(chains=16, budget=51, leapfrog=10)}
    rows = []
    for model in ARGS.models:
        g, x, mask = generator_of(model)
        cell = cells[model]
        batch = 8 if model == "fm28" else 1
        observed = x.expand(batch, *x.shape[1:]).clone()
        leapfrog, budget = cell["leapfrog"], cell["budget"]
        n = batch * cell["chains"]
        z = torch.randn(n, g.latent_dim)
        compiled_bare = torch.compile(bare_passes, fullgraph=True, dynamic=False, options=COMPILE_OPTIONS)

        def sampler(compile: bool, seed: int) -> tuple[float, int]:
            settings = cg.SMC(final_moves=budget, compile=compile)
            t = time.perf_counter()
            out = cg.complete(g, observed, mask, method=settings, chains=cell["chains"], leapfrog=leapfrog,
                              max_grad_evals=budget, seed=seed)
            return time.perf_counter() - t, out.grad_evals

        def bare(compile: bool, grad_evals: int) -> float:
            fn = compiled_bare if compile else bare_passes_eager
            calls = max(1, round(grad_evals / leapfrog))
            t = time.perf_counter()
            for _ in range(calls):
                fn(g, z, leapfrog)
            return (time.perf_counter() - t) * grad_evals / (calls * leapfrog)

        started = time.perf_counter()
        sampler(True, 0)
        compile_s = time.perf_counter() - started
        started = time.perf_counter()
        bare(True, leapfrog)
        bare_compile_s = time.perf_counter() - started
        sampler(False, 0)
        ratios: dict[str, list[float]] = {"eager": [], "compiled": []}
        seconds: dict[str, list[float]] = {"eager": [], "compiled": []}
        loads = [load()]
        for r in range(ARGS.repeats):
            for name in (("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")):
                elapsed, evals = sampler(name == "compiled", r)
                reference = bare(name == "compiled", evals)
                ratios[name].append(elapsed / reference)
                seconds[name].append(elapsed)
        loads.append(load())
        for name in ("eager", "compiled"):
            row = {"part": "overhead", "model": model, "mode": name, "batch": n, "grad_evals": evals,
                   "complete_s_median": round(median(seconds[name]), 3),
                   "ratio_median": round(median(ratios[name]), 3), "ratio_min": round(min(ratios[name]), 3),
                   "ratio_max": round(max(ratios[name]), 3), "repeats": len(ratios[name]),
                   "compile_s": round(compile_s, 1) if name == "compiled" else None,
                   "bare_compile_s": round(bare_compile_s, 1) if name == "compiled" else None,
                   "load": " → ".join(loads)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "load": load(),
                      "inductor_cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default")}), flush=True)
    rows = {"toy": toy, "rates": rates, "overhead": overhead}[ARGS.part]()
    if ARGS.json is not None:
        ARGS.json.parent.mkdir(parents=True, exist_ok=True)
        ARGS.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
