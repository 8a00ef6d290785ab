"""``cogen serve``: a local web page to complete an image (docs/web.md).

The page itself (:mod:`cogenerate.cli.web.app`) is Gradio glue only; everything it does is in
plain, separately tested functions:

- :mod:`cogenerate.cli.web.inputs`: the image to complete (an upload, a shipped test image, a
  small upload to super-resolve), huge images reduced with a notice, the hidden region built
  from the layer drawn with the mouse or from a preset, and checks that it hides something
  but not everything;
- :mod:`cogenerate.cli.web.runs`: one run as the ``cogen complete`` command line it stands for,
  run through the same functions as that command, streamed as live snapshots fed by
  ``complete()``'s ``callback=`` and cancelled by making that callback return ``False``;
- :mod:`cogenerate.cli.web.views`: the pictures and text the page shows (tiles, the std heat map,
  the importance weights as bars, the summary).

The page is a front end of ``cogen complete`` (it runs the command's own parser and functions,
so that its files match the command's), which is why it lives in the CLI package: the library
never imports it. Importing this package does not import Gradio; only :mod:`cogenerate.cli.web.app` does.
"""

from __future__ import annotations

__all__: list[str] = []
