"""Peer benchmark: BlackJAX adaptive tempered SMC + HMC on cogenerate's toy generator.

The paper's toy problem (Fang & Schwing 2019, §3.1): a GAN generator ``G: R^2 -> R^2``
trained 15k iterations on five Gaussians on the unit circle; we observe ``x2 = 0`` and
sample ``p(z | x_o) ∝ N(z; 0, I) · N(0; G(z)_2, σ²)`` with σ = 0.05. A particle succeeds
when ``‖G(z) − (1, 0)‖² / 2 < 0.01``. Same generator weights, same posterior, same success
criterion as ``benchmarks/toy_quality.py``, so the numbers are comparable.

This script runs in its own virtualenv (the library never depends on jax/blackjax):

    python3 -m venv .bench-venv
    .bench-venv/bin/pip install jax jaxlib blackjax safetensors numpy   # CPU JAX, no torch
    .bench-venv/bin/python benchmarks/peer_blackjax.py --json runs/bench/peer_blackjax.json

(from the repository root; if ``runs/toy-gan/iter_0015000.safetensors`` is missing it is
trained first with the cogenerate venv, ``.venv/bin/python``, ≈1–2 min). Single-threaded
XLA (``--threads 1``, the default) matches ``toy_quality.py``'s ``torch.set_num_threads(1)``.

Sampler (BlackJAX's ``adaptive_tempered_smc``): 100 particles drawn from the prior, target
ESS 0.5 (bisection on the ESS of the incremental weights), systematic resampling,
``num_mcmc_steps=1`` HMC move per tempering step with 10 velocity-Verlet steps, identity
inverse mass and a fixed step size (``--step-sizes``), until the tempering parameter λ
reaches 1. The whole run is one jitted ``jax.lax.while_loop``; the step size is a traced
argument, so everything compiles once.

Gradient evaluations per chain, as counted here: every tempering step BlackJAX rebuilds the
HMC state of each particle with ``hmc.init`` (``jax.value_and_grad`` of the tempered
log-density: 1 gradient) and then runs 10 leapfrog steps (velocity Verlet reuses the
previous gradient: 10 gradients), so ``grad_evals = steps × 11``; ``steps × 10`` (leapfrog
only) is reported too. Forward-only log-likelihood evaluations (ESS bisection, reweighting)
are not counted, as in cogenerate. Order of a BlackJAX step: resample → move at the *old*
λ → reweight to the new λ, so the first move is at λ = 0 (the prior) and the final
particles carry importance weights at λ = 1 (reported weighted and unweighted).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "runs" / "toy-gan" / "iter_0015000"
NOISE_STD = 0.05
THRESHOLD = 0.01
TARGET = (1.0, 0.0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT, help="checkpoint prefix (no suffix)")
    parser.add_argument("--step-sizes", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4])
    parser.add_argument("--seeds", type=int, default=10, help="runs (PRNG keys 0..seeds-1) per step size")
    parser.add_argument("--particles", type=int, default=100)
    parser.add_argument("--leapfrog", type=int, default=10)
    parser.add_argument("--target-ess", type=float, default=0.5)
    parser.add_argument("--max-steps", type=int, default=1000, help="safety cap on tempering steps")
    parser.add_argument("--threads", type=int, default=1, help="1: single-threaded XLA CPU; 0: XLA's default")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--serve", action="store_true",
                        help="compile, print one JSON line, then answer each stdin line 'SEED STEP_SIZE' with one "
                             "run's JSON line (benchmarks/compiled.py interleaves these runs with its own)")
    return parser.parse_args()


def ensure_checkpoint(prefix: Path) -> None:
    """Train the toy GAN with the cogenerate venv if the checkpoint is missing."""
    if prefix.with_suffix(".safetensors").exists():
        return
    if prefix != CHECKPOINT:
        sys.exit(f"{prefix}.safetensors not found")
    code = ("from cogenerate.training.gan import train_toy_gan; "
            "train_toy_gan(iterations=15000, seed=0, checkpoint_dir='runs/toy-gan')")
    print(f"{prefix}.safetensors missing: training it with .venv/bin/python (1–2 min)", file=sys.stderr)
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", code], cwd=ROOT, check=True)


def main() -> None:
    args = parse_args()
    if args.threads == 1:  # must be set before jax initialises its CPU backend
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    ensure_checkpoint(args.checkpoint)

    import blackjax
    import jax
    import jax.numpy as jnp
    import numpy as np
    from safetensors.numpy import load_file

    tensors = load_file(str(args.checkpoint) + ".safetensors")
    layers = []  # generator.net.{0,2,4,6}: Linear layers of the nn.Sequential, ReLU in between
    index = 0
    while f"generator.net.{index}.weight" in tensors:
        layers.append((jnp.asarray(tensors[f"generator.net.{index}.weight"]),
                       jnp.asarray(tensors[f"generator.net.{index}.bias"])))
        index += 2
    assert len(layers) == 4, f"expected 4 Linear layers, found {len(layers)}"

    def generator(z):  # (2,) -> (2,); PyTorch Linear: x @ W.T + b
        h = z
        for i, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if i < len(layers) - 1:
                h = jax.nn.relu(h)
        return h

    log_norm_lik = -0.5 * np.log(2 * np.pi * NOISE_STD**2)

    def logprior_fn(z):
        return -0.5 * jnp.sum(z**2) - jnp.log(2 * jnp.pi)

    def loglikelihood_fn(z):  # log N(x2 = 0; G(z)_2, σ²)
        return -0.5 * (generator(z)[1] / NOISE_STD) ** 2 + log_norm_lik

    def error_fn(z):
        x = generator(z)
        return 0.5 * ((x[0] - TARGET[0]) ** 2 + (x[1] - TARGET[1]) ** 2)

    n, dim = args.particles, 2
    inverse_mass = jnp.ones(dim)

    def run(key, step_size):
        init_key, loop_key = jax.random.split(key)
        smc = blackjax.adaptive_tempered_smc(
            logprior_fn,
            loglikelihood_fn,
            blackjax.hmc.build_kernel(),
            blackjax.hmc.init,
            blackjax.smc.extend_params({
                "step_size": step_size,
                "inverse_mass_matrix": inverse_mass,
                "num_integration_steps": args.leapfrog,
            }),
            blackjax.smc.resampling.systematic,
            args.target_ess,
            num_mcmc_steps=1,
        )
        state = smc.init(jax.random.normal(init_key, (n, dim)))

        def cond(carry):
            _, state, steps, _, _ = carry
            return (state.tempering_param < 1.0) & (steps < args.max_steps)

        def body(carry):
            key, state, steps, log_z, acceptance = carry
            key, subkey = jax.random.split(key)
            state, info = smc.step(subkey, state)
            acc = jnp.mean(info.update_info.acceptance_rate)
            return key, state, steps + 1, log_z + info.log_likelihood_increment, acceptance + acc

        carry = (loop_key, state, jnp.int32(0), jnp.float32(0.0), jnp.float32(0.0))
        _, state, steps, log_z, acceptance = jax.lax.while_loop(cond, body, carry)
        success = (jax.vmap(error_fn)(state.particles) < THRESHOLD).astype(jnp.float32)
        return {
            "fraction": jnp.mean(success),
            "weighted_fraction": jnp.sum(state.weights * success),
            "steps": steps,
            "lambda": state.tempering_param,
            "log_evidence": log_z,
            "mean_acceptance": acceptance / jnp.maximum(steps, 1),
            "ess": 1.0 / jnp.sum(state.weights**2),
        }

    run_jit = jax.jit(run)
    started = time.perf_counter()
    compiled = run_jit.lower(jax.random.key(0), jnp.float32(args.step_sizes[0])).compile()
    compile_s = time.perf_counter() - started

    if args.serve:
        jax.block_until_ready(compiled(jax.random.key(10_000), jnp.float32(args.step_sizes[0])))  # warm-up
        print(json.dumps({"compile_s": compile_s, "blackjax": blackjax.__version__, "jax": jax.__version__}),
              flush=True)
        for line in sys.stdin:
            seed, step_size = line.split()
            started = time.perf_counter()
            out = jax.block_until_ready(compiled(jax.random.key(int(seed)), jnp.float32(float(step_size))))
            elapsed = time.perf_counter() - started
            steps = int(out["steps"])
            print(json.dumps({"wall_ms": 1000 * elapsed, "fraction": float(out["fraction"]), "steps": steps,
                              "grad_evals_per_chain": steps * (args.leapfrog + 1)}), flush=True)
        return

    rows = []
    for step_size in args.step_sizes:
        jax.block_until_ready(compiled(jax.random.key(10_000), jnp.float32(step_size)))  # warm-up
        for seed in range(args.seeds):
            started = time.perf_counter()
            out = jax.block_until_ready(compiled(jax.random.key(seed), jnp.float32(step_size)))
            elapsed = time.perf_counter() - started
            steps = int(out["steps"])
            rows.append({
                "step_size": step_size,
                "seed": seed,
                "fraction_within_0.01": round(float(out["fraction"]), 4),
                "weighted_fraction_within_0.01": round(float(out["weighted_fraction"]), 4),
                "tempering_steps": steps,
                "final_lambda": float(out["lambda"]),
                "grad_evals_per_chain": steps * (args.leapfrog + 1),
                "leapfrog_grad_evals_per_chain": steps * args.leapfrog,
                "mean_acceptance": round(float(out["mean_acceptance"]), 3),
                "final_ess": round(float(out["ess"]), 1),
                "log_evidence": round(float(out["log_evidence"]), 3),
                "wall_ms": round(1000 * elapsed, 2),
            })

    summary = []
    for step_size in args.step_sizes:
        sub = [r for r in rows if r["step_size"] == step_size]
        fractions = np.array([r["fraction_within_0.01"] for r in sub])
        summary.append({
            "step_size": step_size,
            "mean_fraction": round(float(fractions.mean()), 4),
            "sd_fraction": round(float(fractions.std(ddof=1)), 4) if len(sub) > 1 else None,
            "mean_weighted_fraction": round(float(np.mean([r["weighted_fraction_within_0.01"] for r in sub])), 4),
            "mean_tempering_steps": round(float(np.mean([r["tempering_steps"] for r in sub])), 2),
            "mean_grad_evals_per_chain": round(float(np.mean([r["grad_evals_per_chain"] for r in sub])), 1),
            "median_wall_ms": round(float(np.median([r["wall_ms"] for r in sub])), 2),
        })

    keys = ["step_size", "seed", "fraction_within_0.01", "weighted_fraction_within_0.01", "tempering_steps",
            "grad_evals_per_chain", "leapfrog_grad_evals_per_chain", "mean_acceptance", "final_ess",
            "log_evidence", "wall_ms"]
    print(f"BlackJAX {blackjax.__version__}, jax {jax.__version__}, {jax.devices()[0].platform}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; compile {compile_s:.2f} s (once, step size traced)\n")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    print()
    skeys = list(summary[0])
    print("| " + " | ".join(skeys) + " |")
    print("|" + "---|" * len(skeys))
    for s in summary:
        print("| " + " | ".join(str(s[k]) for k in skeys) + " |")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "peer": "blackjax.adaptive_tempered_smc + blackjax.hmc",
            "versions": {"blackjax": blackjax.__version__, "jax": jax.__version__},
            "settings": {"particles": n, "leapfrog": args.leapfrog, "num_mcmc_steps": 1,
                         "target_ess": args.target_ess, "inverse_mass_matrix": "identity",
                         "resampling": "systematic", "noise_std": NOISE_STD, "threshold": THRESHOLD,
                         "xla_flags": os.environ.get("XLA_FLAGS", ""),
                         "grad_evals_counting": "steps * (leapfrog + 1): hmc.init value_and_grad each step"},
            "checkpoint": str(args.checkpoint),
            "compile_s": round(compile_s, 3),
            "rows": rows,
            "summary": summary,
        }, indent=2))


if __name__ == "__main__":
    main()
