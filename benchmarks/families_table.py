"""The family table of docs/benchmarks.md (issue 11): FD, AIS log-likelihood with its BDMC gap,
ELBO / IWAE for encoder models, test reconstruction MSE.

    python benchmarks/families_table.py --models fashion-mnist fashion-mnist-vae ... \
        --parts sigma,loglik,bdmc,bounds,recon,fd --json /work/runs/bench/families_table.json

Per model (rows are merged into ``--json`` as each part finishes, so parts can run separately):

``sigma``   σ of the Gaussian observation model, fitted on the first ``--sigma-images``
            validation images by maximum evidence (:func:`cogenerate.evaluation.likelihood.fit_noise_std`).
``loglik``  forward AIS ``log p(x)`` on the first ``--images`` report images (``--steps``
            temperatures, ``--chains`` chains, 10 leapfrog steps), in nats per image.
``bdmc``    the BDMC sandwich on ``--bdmc-images`` images simulated from the model at each of
            ``--bdmc-steps`` temperatures: mean lower, upper and gap.
``bounds``  ELBO (100 draws) and IWAE-5000 on the same report images (encoder models).
``recon``   reconstruction MSE ``mean((G(μ(x)) − x)²)`` over the first 1,000 report images
            (encoder models; μ the encoder's mean).
``fd``      FD / precision / recall of 5,000 samples (:mod:`cogenerate.evaluation`); a model
            with several generators draws an equal share from each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cogenerate.evaluation.likelihood import ais_log_likelihood, bdmc, elbo, fit_noise_std, iwae_bound
from cogenerate.evaluation.protocol import evaluate_samples, generate_samples
from cogenerate.evaluation.splits import load_split
from cogenerate.mixture import single_generator_models
from cogenerate.models.loading import load_model


def _mean(values: torch.Tensor) -> dict:
    values = values.double()
    half = 1.96 * values.std() / len(values) ** 0.5 if len(values) > 1 else torch.tensor(0.0)
    return {"mean": float(values.mean()), "low": float(values.mean() - half), "high": float(values.mean() + half),
            "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--parts", default="sigma,loglik,bdmc,bounds,recon,fd")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--sigma-images", type=int, default=50)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--bdmc-images", type=int, default=10)
    parser.add_argument("--bdmc-steps", default="100,1000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = args.parts.split(",")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = json.loads(out.read_text()) if out.exists() else {}
    report = load_split(args.data, "report")
    validation = load_split(args.data, "validation")

    def save(name: str, key: str, value, started: float) -> None:
        table.setdefault(name, {})[key] = value
        table[name].setdefault("seconds", {})[key] = round(time.perf_counter() - started, 1)
        out.write_text(json.dumps(table, indent=1))
        print(f"{name} {key}: {json.dumps(value)[:200]} ({time.perf_counter() - started:.0f} s)", flush=True)

    for name in args.models:
        model = load_model(name)
        rng = torch.Generator().manual_seed(args.seed)
        started = time.perf_counter()
        if "sigma" in parts:
            save(name, "sigma", fit_noise_std(model, validation[: args.sigma_images], seed=args.seed), started)
        sigma = table.get(name, {}).get("sigma")
        images = report[: args.images]
        if "loglik" in parts:
            started = time.perf_counter()
            values = ais_log_likelihood(model, images, noise_std=sigma, steps=args.steps, chains=args.chains, rng=rng)
            save(name, "loglik", {**_mean(values), "steps": args.steps, "chains": args.chains}, started)
        if "bdmc" in parts:
            for steps in (int(s) for s in args.bdmc_steps.split(",")):
                started = time.perf_counter()
                result = bdmc(model, args.bdmc_images, noise_std=sigma, steps=steps, chains=args.chains,
                              rng=torch.Generator().manual_seed(args.seed + 1))
                save(name, f"bdmc_{steps}", {"lower": _mean(result.lower), "upper": _mean(result.upper),
                                            "gap": _mean(result.gap)}, started)
        if model.encoder is not None and "bounds" in parts:
            started = time.perf_counter()
            save(name, "elbo", _mean(elbo(model, images, noise_std=sigma, samples=100, rng=rng)), started)
            started = time.perf_counter()
            save(name, "iwae_5000", _mean(iwae_bound(model, images, noise_std=sigma, samples=5000, rng=rng)), started)
        if model.encoder is not None and "recon" in parts:
            started = time.perf_counter()
            x = report[:1000]
            with torch.no_grad():
                for module in model.modules.values():
                    module.eval()
                error = (model.generator(model.encoder(x)[0]) - x).pow(2).flatten(1).mean(1)
            save(name, "recon_mse", _mean(error), started)
        if "fd" in parts:
            started = time.perf_counter()
            singles = single_generator_models(model)
            share = 5000 // len(singles)
            samples = torch.cat([generate_samples(single, share, rng=rng) for single in singles])
            quality = evaluate_samples(samples, args.data, rng=torch.Generator().manual_seed(args.seed + 2))
            save(name, "fd", {key: (value._asdict() if hasattr(value, "_asdict") else value)
                              for key, value in quality._asdict().items()}, started)


if __name__ == "__main__":
    main()
