"""Does the encoder proposal pay? Hidden MSE against gradients per chain, with and without it (issue 11).

    python benchmarks/families_encoder.py --model fashion-mnist-vae --split report --images 100 \
        --configs "gd-best@75,150,300" "encoder@25,50,75,150,300" "prior@75,300" "fill@75" \
        --json /work/runs/bench/encoder_vae.json

A config is ``NAME@BUDGET,BUDGET,...``; NAME is

- ``gd-best``: the gd-best baseline (best of 5,000 prior draws, then Adam), no encoder;
- ``prior``: the default method (smc-polish) started from the prior (the model's encoder removed);
- ``encoder``: the default method as ``complete()`` runs it on the model: from the encoder
  proposal (variant "auto": mask-aware if the encoder is);
- ``fill`` / ``mask``: the default method from the encoder proposal of that variant;
- ``encoder:κ:α``: the "auto" proposal widened by κ with prior weight α (e.g. ``encoder:2:0.1``);
- ``bridge``: the default method from the encoder with its SMC part tempering from q
  (``temper_from="init"``, :mod:`cogenerate.anneal.bridge`); needs a fixed ``--noise-std``.

Every row is the co-generation protocol of ``cogenerate.evaluation`` (8 chains, the protocol's
fixed random boxes and top halves on the first ``--images`` images of ``--split``) at that
budget. Rows are appended to ``--json`` as they finish, so a killed run keeps its rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

import cogenerate as cg
from cogenerate.encoders import EncoderProposal
from cogenerate.evaluation.cogeneration import evaluate_cogeneration, row_as_dict
from cogenerate.evaluation.splits import load_split
from cogenerate.models.loading import load_model


def method_and_model(name: str, model: cg.GenerativeModel):
    """The method settings and the model (with or without encoder) a config name stands for."""
    if name == "gd-best":
        return cg.GDBest(), model
    if name == "prior":
        return cg.SMCPolish(), model.with_parts(encoder=None)
    if name == "encoder":
        return cg.SMCPolish(), model
    if name == "bridge":
        default = cg.SMCPolish()
        return dataclasses.replace(default, smc=dataclasses.replace(default.smc, temper_from="init")), model
    kind, *numbers = name.split(":")
    variant = "auto" if kind == "encoder" else kind
    options = {"variant": variant}
    if numbers:
        options.update(widen=float(numbers[0]), prior_weight=float(numbers[1]))
    default = cg.SMCPolish()
    return cg.SMCPolish(smc=cg.SMC(leapfrog=default.smc.leapfrog, candidates=default.smc.candidates,
                                   init=EncoderProposal(model.encoder, **options))), model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion-mnist-vae")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--split", default="report", choices=("report", "validation"))
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--masks", nargs="+", default=["box", "top-half"])
    parser.add_argument("--configs", nargs="+", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-std", default=None, help="a fixed σ, or 'auto' to fit it per image (default: complete()'s: the model's own σ)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    images = load_split(args.data, args.split)[: args.images]
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.read_text()) if out.exists() else []
    noise_std = args.noise_std if args.noise_std in (None, "auto") else float(args.noise_std)
    for config in args.configs:
        name, budgets = config.split("@")
        for budget in (int(b) for b in budgets.split(",")):
            method, used = method_and_model(name, model)
            started = time.perf_counter()
            results = evaluate_cogeneration(used, images, rng=torch.Generator().manual_seed(args.seed), method=method,
                                            masks=args.masks, chains=args.chains, max_grad_evals=budget,
                                            noise_std=noise_std)
            for row in results:
                record = {"model": args.model, "split": args.split, "config": name, "budget": budget,
                          "noise_std": args.noise_std,
                          **row_as_dict(row)}
                rows.append(record)
                print(f"{name:>14} @ {budget:>3} {row.mask:>9}: hidden MSE {row.summaries['hidden_mse'].mean:.4f} "
                      f"SSIM {row.summaries['ssim'].mean:.3f} ±2σ {row.summaries['within_2_std'].mean:.3f} "
                      f"log Z {row.summaries['log_evidence'].mean:.1f} ({time.perf_counter() - started:.0f} s)",
                      flush=True)
            out.write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
