"""The Gradio page of ``cogen serve``: layout and glue only (docs/web.md).

What the handlers do is in :mod:`cogenerate.cli.web.inputs` (image, hidden region),
:mod:`cogenerate.cli.web.runs` (the run as a ``cogen complete`` command, streamed, cancellable)
and :mod:`cogenerate.cli.web.views` (what is shown). Every error caused by the input reaches the
page as one line (``gr.Error``), never a traceback; notices (an image resized) as ``gr.Warning``.
Runs wait in Gradio's queue, which shows each its position, and at most ``concurrency`` run
at once.
"""

from __future__ import annotations

import functools
import inspect
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import torch

from cogenerate.api import DEFAULT_METHOD
from cogenerate.methods import METHODS
from cogenerate.models.pretrained import PRETRAINED
from cogenerate.cli.web import inputs, views
from cogenerate.cli.web.runs import Finished, RunRegistry, Settings, Snapshot, prepare, stream

__all__ = ["build_app", "serve", "DEFAULT_MODEL"]

DEFAULT_MODEL = "fashion-mnist"
MAX_CHAINS = 64
MAX_BUDGET = 5000
MAX_UPLOAD = "50mb"  # Gradio refuses larger files with its own message
_LOG = logging.getLogger("cogenerate.cli.web")

_INTRO = """# cogen · complete an image
Pick a model and an image, paint the part to hide (or pick a preset), and run: the chains of the
sampler complete the hidden part, updating while they run. The posterior mean is the weighted
average of the completions, the std map shows where they disagree (the uncertainty), the bars are
the chains' importance weights. See docs/web.md."""


_READY = "Paint the region to hide on the image (or pick a preset), then press **Run**."


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _page_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Show the handler's errors in the page as one line: input errors (``ValueError``,
    ``OSError``) as they are, anything else as an unexpected error (traceback to the log only)."""

    def translate(error: Exception) -> gr.Error:
        if isinstance(error, gr.Error):
            return error
        if isinstance(error, (ValueError, OSError)):
            return gr.Error(_one_line(error), print_exception=False)
        _LOG.exception("unexpected error in %s", handler.__name__)
        return gr.Error(f"unexpected error ({type(error).__name__}): {_one_line(error)}", print_exception=False)

    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from handler(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - every error becomes one line in the page
                raise translate(error) from None
        return generator

    @functools.wraps(handler)
    def plain(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - every error becomes one line in the page
            raise translate(error) from None
    return plain


class Page:
    """The page's handlers and the server-side state they share (folders, device, runs)."""

    def __init__(self, *, root: Path, device: torch.device):
        self.root = root
        self.device = device
        self.runs = RunRegistry()
        self.shapes: dict[str, tuple[int, int]] = {}  # (channels, side) of the shipped models loaded so far

    # -- the model and the image ----------------------------------------------------------

    def model_shape(self, spec: str) -> tuple[int, int]:
        """``(channels, side)`` of model ``spec``; a one-line error if it does not load."""
        from cogenerate.cli.complete import image_shape
        from cogenerate.cli.model_spec import load_model

        name = str(spec or "").strip()
        if not name:
            raise ValueError("choose a model")
        if name in self.shapes:
            return self.shapes[name]
        try:
            model = load_model(name, device=self.device)
        except ValueError as error:
            raise ValueError(f"model {spec!r} failed to load: {_one_line(error)}") from None
        shape = image_shape(model, name)
        if name in PRETRAINED:  # shipped files do not change while the page runs; local ones may
            self.shapes[name] = shape
        return shape

    def canvas(self, source: str | None, spec: str, region: str, seed: float | None,
               *, notify: bool = False) -> dict[str, Any] | None:
        """The drawing canvas for image ``source`` under model ``spec``: the image enlarged, or,
        for a preset, what that preset leaves observed (hidden pixels grey)."""
        if not source:
            return None
        channels, side = self.model_shape(spec)
        if region == inputs.SUPER_RESOLUTION:
            path, _ = inputs.super_resolution_input(source, side=side, channels=channels, folder=self.root / "inputs")
            image = inputs.page_image(path, side=side, channels=channels, folder=self.root / "inputs").image
        else:
            fitted = inputs.page_image(source, side=side, channels=channels, folder=self.root / "inputs")
            if notify:
                for notice in fitted.notices:
                    gr.Warning(notice)
            image = fitted.image
            if region != inputs.DRAWN:
                image = inputs.preset_view(image, region, seed=int(seed or 0))
        return {"background": inputs.drawing_background(image), "layers": [], "composite": None}

    def on_upload(self, upload: str | None, spec: str, region: str, seed: float | None) -> tuple[Any, ...]:
        if not upload:
            return None, None, "", "Choose an image to start."
        canvas = self.canvas(upload, spec, region, seed, notify=True)
        return upload, canvas, f"Image: **{Path(upload).name}**", _READY

    def on_test_image(self, name: str | None, spec: str, region: str, seed: float | None) -> tuple[Any, ...]:
        if not name:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        path = inputs.write_test_image(name, self.root / "inputs")
        return str(path), self.canvas(str(path), spec, region, seed), f"Image: shipped test image **{name}**", _READY

    def on_settings(self, source: str | None, spec: str, region: str, seed: float | None) -> Any:
        """A new model, hidden region or seed: redraw the canvas (a drawing is cleared)."""
        return self.canvas(source, spec, region, seed) if source else gr.skip()

    def on_model(self, spec: str) -> str:
        channels, side = self.model_shape(spec)
        kind = "grey" if channels == 1 else "RGB"
        name = str(spec).strip()
        return PRETRAINED[name] if name in PRETRAINED else f"A local model: makes {side}×{side} {kind} images"

    # -- a run -------------------------------------------------------------------------------

    def new_run(self) -> tuple[str, str]:
        """A new run id (before the run waits in the queue, so that Cancel can reach it there)."""
        run_id = uuid.uuid4().hex[:12]
        self.runs.open(run_id)
        return run_id, "Waiting for the sampler (the queue position shows below)…"

    def on_cancel(self, run_id: str | None) -> None:
        if self.runs.cancel(run_id):
            gr.Info("Cancelling: the sampler stops at its next step and shows what it has.")

    def settings(self, source: str | None, spec: str, editor: dict[str, Any] | None, region: str, method: str,
                 chains: float, budget: float, steps: float | None, leapfrog: float | None, noise: str,
                 seed: float | None, folder: Path) -> Settings:
        """The run the controls ask for; writes the drawn mask (or the super-resolution input) into ``folder``."""
        if not source:
            raise ValueError("upload an image or pick a shipped test image first")
        channels, side = self.model_shape(spec)
        image, mask, known = Path(source), region, True
        if region == inputs.SUPER_RESOLUTION:
            image, factor = inputs.super_resolution_input(source, side=side, channels=channels, folder=folder)
            mask, known = f"sr{factor}", False
        else:
            image = inputs.page_image(source, side=side, channels=channels, folder=self.root / "inputs").path
            if region == inputs.DRAWN:
                drawn = inputs.mask_from_layers((editor or {}).get("layers"), side)
                inputs.check_hidden(drawn, drawn=True)
                mask = "file:" + str(inputs.write_mask(drawn, folder / "mask.png"))
        noise_text = (noise or "").strip()
        noise_std: float | str | None = None
        if noise_text:
            try:
                noise_std = noise_text if noise_text == "auto" else float(noise_text)
            except ValueError:
                raise ValueError(f"noise std must be a positive number or 'auto', got {noise_text!r}") from None
        return Settings(
            model=str(spec).strip(), image=image, mask=mask, method=method, chains=int(chains),
            budget=int(budget) or None, steps=int(steps or 0) or None, leapfrog=int(leapfrog or 0) or None,
            noise_std=noise_std, seed=int(seed or 0), ground_truth=known,
        )

    def on_run(self, run_id: str, source: str | None, spec: str, editor: dict[str, Any] | None, region: str,
               method: str, chains: float, budget: float, steps: float | None, leapfrog: float | None, noise: str,
               seed: float | None) -> Iterator[tuple[Any, ...]]:
        cancel = self.runs.open(run_id)
        try:
            if cancel.is_set():
                yield ("Cancelled before it started.",) + (gr.skip(),) * 6
                return
            folder = self.root / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{run_id[:6]}"
            settings = self.settings(source, spec, editor, region, method, chains, budget, steps, leapfrog, noise,
                                     seed, folder)
            yield (f"Loading {settings.model}…", [], None, None, None, None, None)
            prepared = prepare(settings, folder, device=self.device)
            started = time.perf_counter()
            for update in stream(prepared, cancel=cancel):
                if isinstance(update, Snapshot):
                    text = views.live_text(method=settings.method, fraction=update.fraction, chains=settings.chains,
                                           ess=update.ess, beta=update.beta, seconds=time.perf_counter() - started)
                    yield (text, views.gallery(update.completions, update.weights), views.enlarge(update.mean),
                           views.heat_map(update.std), views.weight_bars(update.weights), gr.skip(), gr.skip())
                elif isinstance(update, Finished):
                    yield self.finished(update, prepared.mask is not None and settings.mask.startswith("file:"),
                                        folder)
        finally:
            self.runs.close(run_id)

    @staticmethod
    def finished(done: Finished, drawn: bool, folder: Path) -> tuple[Any, ...]:
        out = done.out
        downloads = [str(done.files[key]) for key in ("json", "figure", "mean", "samples")]
        if drawn:
            downloads.append(str(folder / "mask.png"))
        if done.cancelled:
            gr.Info("Cancelled: showing the partial result.")
        return (views.final_text(done.report, cancelled=done.cancelled),
                views.gallery(out.completions[0], out.weights[0]), views.enlarge(out.mean[0]),
                views.heat_map(out.std[0]), views.weight_bars(out.weights[0]), str(done.files["figure"]), downloads)


def build_app(*, models: Sequence[str] = (), root: Path | None = None, device: torch.device | str = "cpu",
              concurrency: int = 1) -> gr.Blocks:
    """The page as a ``gr.Blocks`` (not launched).

    Args:
        models: local models (checkpoints, run folders) to list before the shipped ones; the
            first is selected (default: :data:`DEFAULT_MODEL`).
        root: folder for inputs and run results (default: a new temporary folder).
        device: where models run.
        concurrency: runs at once; the others wait in the queue.
    """
    root = Path(tempfile.mkdtemp(prefix="cogen-serve-")) if root is None else Path(root)
    root.mkdir(parents=True, exist_ok=True)
    page = Page(root=root, device=torch.device(device))
    choices = [*models, *(name for name in PRETRAINED if name not in models)]
    methods = list(METHODS)
    with gr.Blocks(title="cogen · complete an image", analytics_enabled=False) as app:
        app.cogen_root = root  # type: ignore[attr-defined]
        gr.Markdown(_INTRO)
        source = gr.State(None)
        run_id = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                gr.Markdown("### 1 · Model and image")
                model = gr.Dropdown(choices, value=choices[0] if choices else DEFAULT_MODEL, allow_custom_value=True,
                                    label="Model", elem_id="model",
                                    info="a shipped model, or a checkpoint or `cogen train` run folder on this machine")
                model_info = gr.Markdown(PRETRAINED.get(model.value, ""), elem_id="model-info")
                upload = gr.File(label="Upload an image", file_count="single", type="filepath", elem_id="upload",
                                 height=120)
                test_image = gr.Dropdown(inputs.test_image_names(), value=None, label="… or a shipped test image",
                                         elem_id="test-image")
                source_info = gr.Markdown(elem_id="source-info")
            with gr.Column(scale=1, min_width=360):
                gr.Markdown("### 2 · Hidden region")
                region = gr.Dropdown(list(inputs.PRESETS), value=inputs.DRAWN, label="Hidden region",
                                     elem_id="region", info="paint it, or pick a preset (see docs/web.md)")
                scale = inputs.drawing_scale(28)
                editor = gr.ImageEditor(
                    label="Paint over the part to hide", type="numpy", image_mode="RGBA", format="png",
                    sources=(), transforms=(), layers=False, canvas_size=(28 * scale, 28 * scale),
                    brush=gr.Brush(default_size=2 * scale, colors=["#ff00ff"], default_color="#ff00ff",
                                   color_mode="fixed"),
                    eraser=gr.Eraser(default_size=2 * scale), elem_id="editor", height=460,
                )
            with gr.Column(scale=1, min_width=280):
                gr.Markdown("### 3 · Sampler")
                method = gr.Dropdown(methods, value=DEFAULT_METHOD, label="Method", elem_id="method",
                                     info="smc-polish: SMC, then polishing the best chains (the default)")
                chains = gr.Slider(1, MAX_CHAINS, value=16, step=1, label="Chains", elem_id="chains")
                budget = gr.Slider(0, MAX_BUDGET, value=400, step=10, elem_id="budget",
                                   label="Budget: gradient evaluations per chain (0: the method's default)")
                with gr.Accordion("More options", open=False):
                    steps = gr.Number(0, precision=0, minimum=0, label="Steps (0: the method's default)",
                                      elem_id="steps")
                    leapfrog = gr.Number(0, precision=0, minimum=0, label="Leapfrog steps per HMC move (0: default)",
                                         elem_id="leapfrog")
                    noise = gr.Textbox("", label="Observation noise std ('auto', a number, or empty: the method's "
                                                 "default)", elem_id="noise")
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="seed")
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
        status = gr.Markdown("Choose an image to start.", elem_id="status")
        with gr.Row(equal_height=True):
            mean = gr.Image(label="Posterior mean", elem_id="mean", height=220, interactive=False)
            std = gr.Image(label="Uncertainty: posterior std", elem_id="std", height=220, interactive=False)
            weights = gr.Image(label="Importance weights per chain (grey line: uniform)", elem_id="weights",
                               height=220, interactive=False)
        completions = gr.Gallery(label="Completions, heaviest first", columns=8, height=260, elem_id="completions",
                                 object_fit="contain", allow_preview=True, fit_columns=False)
        with gr.Row(equal_height=False):
            figure = gr.Image(label="Result (completion.png)", elem_id="figure", interactive=False, type="filepath",
                              scale=3)
            downloads = gr.File(label="Download (completion.json: the numbers and the command that reproduces them)",
                                file_count="multiple", elem_id="downloads", interactive=False, scale=1)

        canvas_inputs = [source, model, region, seed]
        model.change(_page_errors(page.on_model), model, model_info).then(
            _page_errors(page.on_settings), canvas_inputs, editor)
        upload.upload(_page_errors(page.on_upload), [upload, model, region, seed],
                      [source, editor, source_info, status])
        upload.clear(lambda: (None, None, "", "Choose an image to start."), None, [source, editor, source_info, status])
        test_image.change(_page_errors(page.on_test_image), [test_image, model, region, seed],
                          [source, editor, source_info, status])
        region.change(_page_errors(page.on_settings), canvas_inputs, editor)
        seed.change(_page_errors(page.on_settings), canvas_inputs, editor)
        run.click(page.new_run, None, [run_id, status], queue=False).then(
            _page_errors(page.on_run),
            [run_id, source, model, editor, region, method, chains, budget, steps, leapfrog, noise, seed],
            [status, completions, mean, std, weights, figure, downloads],
            concurrency_limit=concurrency, concurrency_id="runs",
        )
        cancel.click(_page_errors(page.on_cancel), run_id, None, queue=False)
        if model.value not in PRETRAINED:
            app.load(_page_errors(page.on_model), model, model_info)  # check a local model when the page opens
    return app


def serve(*, host: str = "127.0.0.1", port: int = 7860, models: Sequence[str] = (), root: Path | None = None,
          device: torch.device | str = "cpu", concurrency: int = 1, queue_size: int = 20) -> tuple[gr.Blocks, str]:
    """Start the page on ``host:port`` in a background thread; returns the app and its URL
    (``app.block_thread()`` waits until Ctrl-C, ``app.close()`` stops it)."""
    app = build_app(models=models, root=root, device=device, concurrency=concurrency)
    app.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    _, url, _ = app.launch(
        server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, show_error=False,
        allowed_paths=[str(app.cogen_root)], max_file_size=MAX_UPLOAD, ssr_mode=False, mcp_server=False,
        footer_links=[],
    )
    return app, url or f"http://{host}:{port}/"
