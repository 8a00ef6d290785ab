"""``cogen serve``: a local web page to complete an image (docs/web.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from cogenerate.cli.common import setup

__all__ = ["register", "run"]


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``cogen serve`` through ``command(name, help, description, epilog)``."""
    parser = command(
        "serve", "a local web page to complete an image: draw the hole, watch the chains",
        "Start a web page on this machine (default http://127.0.0.1:7860): pick a shipped or\n"
        "local model, upload an image or pick a shipped test image, paint the region to hide\n"
        "with the mouse (or pick a preset, or super-resolve a small upload), choose the method,\n"
        "chains and budget, and watch the completions, the posterior mean, the std map, the\n"
        "importance weights, the ESS and the log evidence update while the sampler runs; then\n"
        "download completion.png and completion.json, the same files as `cogen complete`\n"
        "(the JSON names the exact command that reproduces it). Runs wait in a queue that shows\n"
        "their position; Cancel stops a run with its partial result. Needs Gradio:\n"
        "pip install 'cogenerate[web]'.",
        "examples:\n"
        "  cogen serve\n"
        "  cogen serve --port 8080 --model runs/fm --concurrency 2\n"
        "  cogen --threads 1 serve --out served-runs\n"
        "\nThe page listens on 127.0.0.1 only (this machine); --host 0.0.0.0 opens it to the\n"
        "network, without any login: do that only on a network you trust.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    parser.add_argument("--model", action="append", default=[],
                        help="a local checkpoint or run folder to offer first (repeatable); the shipped models "
                             "are always offered")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="runs at once; the others wait in the queue (default: %(default)s)")
    parser.add_argument("--queue-size", type=int, default=20,
                        help="runs that may wait in the queue (default: %(default)s)")
    parser.add_argument("--out", default=None,
                        help="folder for the runs' files (default: a new temporary folder)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    device = setup(args)
    for option in ("concurrency", "queue_size"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must lie in 0..65535, got {args.port}")
    try:
        from cogenerate.cli.web.app import serve
    except ImportError as error:
        raise ValueError(f"cogen serve needs Gradio ({error}); install it with: pip install 'cogenerate[web]'") from None
    root = None if args.out is None else Path(args.out).expanduser()
    app, url = serve(host=args.host, port=args.port, models=args.model, root=root, device=device,
                     concurrency=args.concurrency, queue_size=args.queue_size)
    print(f"cogen serve: {url} (runs in {app.cogen_root}; Ctrl-C to stop)", flush=True)
    try:
        app.block_thread()  # until Ctrl-C
    finally:
        app.close()
    return 0
