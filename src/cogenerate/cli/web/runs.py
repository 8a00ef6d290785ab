"""One run of the page: the ``cogen complete`` command it stands for, run through that
command's own functions, streamed while it runs, cancellable.

A run is a :class:`Settings`; :func:`command_argv` turns it into the ``cogen complete``
arguments, parsed by ``cogen``'s own parser, so that the report the page offers records the
exact command that reproduces it (``"command"`` in completion.json) and holds the same numbers.
:func:`prepare` loads what the command loads (:func:`cogenerate.cli.complete.observe` builds
the observation); :func:`stream` runs :func:`cogenerate.complete` in a worker thread, yields a
:class:`Snapshot` of the chains now and then (fed by ``callback=``) and finally a
:class:`Finished` run whose files :func:`cogenerate.cli.complete.write_results` wrote. Setting
the ``cancel`` event makes the callback return ``False``: the sampler stops cleanly and the
partial result is written like a whole one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from cogenerate.api import DEFAULT_METHOD
from cogenerate.result import Completion, Step, weighted_mean

__all__ = [
    "Settings", "Prepared", "Snapshot", "Finished", "RunRegistry",
    "command_argv", "parse_command", "prepare", "snapshot", "stream",
]

# The page shows a new snapshot of the chains at most this often (seconds).
SNAPSHOT_INTERVAL = 0.25
# Figures are drawn with matplotlib's pyplot, which is not thread-safe: one at a time.
_FIGURE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Settings:
    """What the page asks for: the options of ``cogen complete`` it offers.

    Attributes:
        model: shipped name, checkpoint, run folder or ``module.path:factory`` (``--model``).
        image: the image file (``--image``).
        mask: the ``--mask`` spec: a preset, ``sr<k>`` or ``file:PATH``.
        method, chains, budget, steps, leapfrog, noise_std, seed: as the command's options;
            ``None`` leaves the method's default.
        ground_truth: whether the hidden part of the image is known (``--no-ground-truth`` if not).
    """

    model: str
    image: Path
    mask: str
    method: str = DEFAULT_METHOD
    chains: int = 16
    budget: int | None = None
    steps: int | None = None
    leapfrog: int | None = None
    noise_std: float | str | None = None
    seed: int = 0
    ground_truth: bool = True


class Prepared(NamedTuple):
    """A run ready to start: the parsed command and what it loaded."""

    args: argparse.Namespace
    model: Any  # GenerativeModel
    label: str
    given: Any  # ImageInput
    operator: Any  # Operator
    observed: Tensor  # (1, C, S, S), hidden pixels NaN
    mask: Tensor | None  # (1, 1, S, S), 1 = observed
    seed: int
    device: torch.device


class Snapshot(NamedTuple):
    """The chains as they are during a run (CPU tensors).

    Attributes:
        fraction: share of the method's work done, in [0, 1].
        completions: ``(C, *x_shape)`` each chain's sample with the observed part pasted in.
        weights: ``(C,)`` normalised importance weights.
        mean: ``(*x_shape)`` their weighted mean.
        std: ``(*x_shape)`` their weighted standard deviation (0 on observed pixels).
        ess: effective sample size ``1 / Σ w²``.
        beta: the inverse temperature of a sampler, ``None`` for descent methods.
        step: how many snapshots the method has offered so far.
    """

    fraction: float
    completions: Tensor
    weights: Tensor
    mean: Tensor
    std: Tensor
    ess: float
    beta: float | None
    step: int


class Finished(NamedTuple):
    """A finished (or cancelled) run: the CPU completion, the files written, the JSON report."""

    out: Completion
    files: dict[str, Path]
    report: dict[str, Any]
    cancelled: bool


def command_argv(settings: Settings, out: Path) -> list[str]:
    """The ``cogen complete`` arguments (after ``cogen``) that run ``settings`` into folder ``out``."""
    argv = ["complete", "--model", settings.model, "--image", str(settings.image), "--mask", settings.mask,
            "--method", settings.method, "--chains", str(settings.chains)]
    for option, value in (("--budget", settings.budget), ("--steps", settings.steps),
                          ("--leapfrog", settings.leapfrog), ("--noise-std", settings.noise_std)):
        if value is not None:
            argv += [option, str(value)]
    argv += ["--seed", str(settings.seed)]
    if not settings.ground_truth:
        argv.append("--no-ground-truth")
    return argv + ["--out", str(out)]


def parse_command(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by ``cogen``'s own parser (its defaults and checks), with ``args.argv`` set.

    Raises:
        ValueError: the parser's own one-line message, for arguments it refuses.
    """
    from cogenerate.cli import build_parser

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = build_parser().parse_args(argv)
    except SystemExit:
        lines = [line for line in errors.getvalue().splitlines() if "error:" in line]
        raise ValueError(lines[-1].split("error:", 1)[1].strip() if lines else "invalid settings") from None
    args.argv = list(argv)
    return args


def prepare(settings: Settings, out: Path, *, device: torch.device | str = "cpu") -> Prepared:
    """Load the model, the image and the observation of a run, as ``cogen complete`` does.

    Raises:
        ValueError: one line: a model that does not load, an unreadable image, a bad option,
            a mask that hides nothing or everything.
    """
    from cogenerate.api import resolve_noise
    from cogenerate.cli.complete import image_shape, observe
    from cogenerate.cli.model_spec import load_model, model_label
    from cogenerate.data.inputs import check_mask_size, image_from_file
    from cogenerate.data.masks import make_operator
    from cogenerate.methods import resolve_method
    from cogenerate.cli.web.inputs import check_hidden

    for name in ("chains", "budget", "steps", "leapfrog"):
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    args = parse_command(command_argv(settings, out))
    resolve_noise(resolve_method(args.method), args.noise_std)  # refuse a bad method or noise before loading
    device = torch.device(device)
    try:
        model = load_model(args.model, device=device)
    except ValueError as error:
        raise ValueError(f"model {args.model!r} failed to load: {error}") from None
    label = model_label(args.model)
    channels, side = image_shape(model, label)
    given = image_from_file(args.image, side=side, channels=channels)
    check_mask_size(args.mask, given.size, side)
    seed = int(args.seed)
    operator = make_operator(args.mask, n=1, size=side, rng=torch.Generator().manual_seed(seed))
    observed, mask = observe(given.image, operator, device)
    if mask is not None:
        check_hidden(mask, drawn=args.mask.startswith("file:"))
    return Prepared(args, model, label, given, operator, observed, mask, seed, device)


def snapshot(step: Step, prepared: Prepared, count: int) -> Snapshot:
    """The first observation's chains in ``step`` as a CPU :class:`Snapshot`."""
    samples = step.samples[0].detach().to("cpu", torch.float32)  # (C, *x_shape)
    log_weights = torch.log_softmax(step.log_weights[0].detach().to("cpu", torch.float64), 0).float()
    if prepared.mask is not None:
        seen = prepared.mask[0].to(samples.device) > 0
        completions = torch.where(seen, prepared.observed[0].to("cpu", torch.float32), samples)
    else:
        completions = samples
    mean = weighted_mean(completions.unsqueeze(0), log_weights.unsqueeze(0))
    var = weighted_mean((completions.unsqueeze(0) - mean.unsqueeze(1)).pow(2), log_weights.unsqueeze(0))
    same = completions.amax(0) == completions.amin(0)
    std = torch.where(same, torch.zeros_like(var[0]), var[0].clamp_min(0).sqrt())
    weights = log_weights.exp()
    beta = None if step.beta is None else float(step.beta.reshape(-1)[0])
    return Snapshot(float(step.fraction), completions, weights, mean[0], std, float(1.0 / weights.pow(2).sum()),
                    beta, count)


class _Mailbox:
    """The latest :class:`Step` the sampler offered (older ones are dropped), across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._step: Step | None = None
        self.count = 0

    def post(self, step: Step) -> None:
        copy = step._replace(samples=step.samples.detach().to("cpu", copy=True),
                             log_weights=step.log_weights.detach().to("cpu", copy=True), latents=step.latents[:0])
        with self._lock:
            self._step = copy
            self.count += 1

    def take(self) -> tuple[Step | None, int]:
        with self._lock:
            step, self._step = self._step, None
            return step, self.count


def _run(prepared: Prepared, mailbox: _Mailbox, cancel: threading.Event) -> tuple[Completion, float]:
    """``complete()`` with the command's options; returns the CPU result and its seconds."""
    import cogenerate as cg

    args = prepared.args

    def callback(step: Step) -> bool:
        mailbox.post(step)
        return not cancel.is_set()

    started = time.perf_counter()
    out = cg.complete(
        prepared.model, prepared.observed, prepared.operator, method=args.method, chains=args.chains,
        steps=args.steps, leapfrog=args.leapfrog, noise_std=args.noise_std, max_grad_evals=args.budget,
        seed=prepared.seed, discriminator_weight=args.discriminator_weight or None, callback=callback,
    )
    return out.to("cpu"), time.perf_counter() - started


def stream(prepared: Prepared, *, cancel: threading.Event,
           interval: float = SNAPSHOT_INTERVAL) -> Iterator[Snapshot | Finished]:
    """Run ``prepared``: a :class:`Snapshot` at most every ``interval`` seconds while it runs,
    then the :class:`Finished` run (its files written). Setting ``cancel`` (or closing the
    iterator) stops the sampler at its next step; a cancelled run still finishes with its
    partial result.

    Raises:
        ValueError: from ``complete()`` (e.g. an option the method refuses).
    """
    from cogenerate.cli.complete import write_results

    mailbox = _Mailbox()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cogen-serve-run") as pool:
        future = pool.submit(_run, prepared, mailbox, cancel)
        try:
            while True:
                try:
                    out, seconds = future.result(timeout=interval)
                    cancelled = cancel.is_set()
                    break
                except FutureTimeout:
                    step, count = mailbox.take()
                    if step is not None:
                        yield snapshot(step, prepared, count)
        finally:
            cancel.set()  # the consumer went away (or the run ended): stop the sampler
    with _FIGURE_LOCK:
        files, report = write_results(prepared.args, out, model=prepared.model, label=prepared.label,
                                      given=prepared.given, operator=prepared.operator, mask=prepared.mask,
                                      seed=prepared.seed, device=prepared.device, seconds=seconds)
    yield Finished(out, files, report, cancelled)


class RunRegistry:
    """Cancel flags of the runs the page started, by run id (thread-safe).

    The page asks for an id when Run is clicked (before the run waits in the queue), so that
    Cancel stops a run whether it is queued or running.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flags: dict[str, threading.Event] = {}

    def open(self, run_id: str) -> threading.Event:
        """The cancel flag of ``run_id``, created unset if new."""
        with self._lock:
            return self._flags.setdefault(run_id, threading.Event())

    def cancel(self, run_id: str | None) -> bool:
        """Set ``run_id``'s flag; ``True`` if it was a known, not yet cancelled run."""
        if not run_id:
            return False
        with self._lock:
            flag = self._flags.get(run_id)
            if flag is None or flag.is_set():
                return False
            flag.set()
            return True

    def close(self, run_id: str) -> None:
        """Forget ``run_id``."""
        with self._lock:
            self._flags.pop(run_id, None)

