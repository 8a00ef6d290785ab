"""cogenerate.cli.web.app: the Gradio glue (built, not served; the browser test serves it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

gr = pytest.importorskip("gradio", reason="cogen serve needs Gradio: pip install 'cogenerate[web]'")

from cogenerate.cli.web import inputs  # noqa: E402
from cogenerate.cli.web.app import Page, _page_errors, build_app  # noqa: E402


@pytest.fixture
def page(tmp_path: Path) -> Page:
    torch.set_num_threads(1)
    return Page(root=tmp_path, device=torch.device("cpu"))


def _drawn(rows: slice, cols: slice) -> dict:
    layer = np.zeros((336, 336, 4), np.uint8)
    layer[rows, cols] = (255, 0, 255, 255)
    return {"background": None, "layers": [layer], "composite": None}


def test_the_page_builds_with_local_models_first(tmp_path: Path) -> None:
    app = build_app(models=["runs/mine"], root=tmp_path / "served")
    dropdown = next(block for block in app.blocks.values() if getattr(block, "elem_id", None) == "model")
    assert [choice[1] for choice in dropdown.choices][:2] == ["runs/mine", "fashion-mnist"]
    assert dropdown.value == "runs/mine" and (tmp_path / "served").is_dir()
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    assert {"upload", "editor", "run", "cancel", "completions", "mean", "std", "weights", "downloads"} <= ids


def test_errors_reach_the_page_as_one_line() -> None:
    def bad_input() -> None:
        raise ValueError("nothing is hidden:\n  paint")

    def broken() -> None:
        raise RuntimeError("boom")

    def streaming():
        yield 1
        raise OSError("disk full")

    with pytest.raises(gr.Error) as error:
        _page_errors(bad_input)()
    assert error.value.message == "nothing is hidden: paint"
    with pytest.raises(gr.Error) as error:
        _page_errors(broken)()
    assert error.value.message == "unexpected error (RuntimeError): boom"
    updates = _page_errors(streaming)()
    assert next(updates) == 1
    with pytest.raises(gr.Error) as error:
        next(updates)
    assert error.value.message == "disk full"


def test_a_model_that_fails_to_load_is_named(page: Page) -> None:
    assert "DCGAN" in page.on_model("fashion-mnist")
    with pytest.raises(ValueError, match=r"^model 'runs/nowhere' failed to load: "):
        page.on_model("runs/nowhere")


def test_the_controls_become_a_cogen_complete_run(page: Page, tmp_path: Path) -> None:
    image = inputs.write_test_image(inputs.test_image_names()[0], tmp_path)
    settings = page.settings(str(image), "fashion-mnist", _drawn(slice(0, 120), slice(0, 336)), inputs.DRAWN,
                             "smc", 4, 0, 20, 0, " 0.2 ", 5, tmp_path / "run")
    assert settings.mask == f"file:{tmp_path / 'run' / 'mask.png'}" and settings.image == image
    assert (settings.chains, settings.budget, settings.steps, settings.leapfrog, settings.noise_std, settings.seed) == (
        4, None, 20, None, 0.2, 5)
    assert int((inputs.mask_from_layers(_drawn(slice(0, 120), slice(0, 336))["layers"], 28) == 0).sum()) == 10 * 28
    preset = page.settings(str(image), "fashion-mnist", None, "mb10", "gd", 2, 100, None, None, "", 0, tmp_path)
    assert (preset.mask, preset.budget, preset.noise_std, preset.ground_truth) == ("mb10", 100, None, True)
    with pytest.raises(ValueError, match="^nothing is hidden: paint over"):
        page.settings(str(image), "fashion-mnist", {"layers": []}, inputs.DRAWN, "smc", 4, 0, 0, 0, "", 0, tmp_path)
    with pytest.raises(ValueError, match="^every pixel is hidden"):
        page.settings(str(image), "fashion-mnist", _drawn(slice(None), slice(None)), inputs.DRAWN, "smc", 4, 0, 0, 0,
                      "", 0, tmp_path)
    with pytest.raises(ValueError, match="^noise std must be a positive number or 'auto', got 'loud'$"):
        page.settings(str(image), "fashion-mnist", None, "centre", "smc", 4, 0, 0, 0, "loud", 0, tmp_path)
    with pytest.raises(ValueError, match="^upload an image or pick a shipped test image first$"):
        page.settings(None, "fashion-mnist", None, "centre", "smc", 4, 0, 0, 0, "", 0, tmp_path)


def test_super_resolution_of_a_small_upload(page: Page, tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (14, 14), dtype=np.uint8)).save(small)
    settings = page.settings(str(small), "fashion-mnist", None, inputs.SUPER_RESOLUTION, "smc", 4, 0, 0, 0, "", 0,
                             tmp_path / "run")
    assert settings.mask == "sr2" and not settings.ground_truth and settings.image.parent == tmp_path / "run"
    canvas = page.canvas(str(small), "fashion-mnist", inputs.SUPER_RESOLUTION, 0)
    assert canvas is not None and canvas["background"].shape == (336, 336, 3) and canvas["layers"] == []


def test_a_run_streams_to_the_page_and_offers_the_files(page: Page, tmp_path: Path) -> None:
    image = inputs.write_test_image(inputs.test_image_names()[3], tmp_path)
    run_id, waiting = page.new_run()
    assert waiting.startswith("Waiting for the sampler")
    updates = list(page.on_run(run_id, str(image), "fashion-mnist", _drawn(slice(100, 220), slice(60, 280)),
                               inputs.DRAWN, "gd", 3, 0, 5, 0, "", 0))
    status, gallery, mean, std, weights, figure, downloads = updates[-1]
    assert status.startswith("**Done: gd**, 3 chains, 5 gradient evaluations per chain")
    assert len(gallery) == 3 and mean.shape == std.shape == (168, 168, 3) and weights.ndim == 3
    assert Path(figure).name == "completion.png"
    assert [Path(name).name for name in downloads] == ["completion.json", "completion.png", "mean.png", "samples.png",
                                                       "mask.png"]
    report = json.loads(Path(downloads[0]).read_text())
    assert report["mask"] == f"file:{Path(downloads[-1])}" and report["chains"] == 3
    assert not page.runs.cancel(run_id)  # the run is over and forgotten


def test_a_run_cancelled_in_the_queue_does_not_start(page: Page, tmp_path: Path) -> None:
    run_id, _ = page.new_run()
    page.on_cancel(run_id)
    updates = list(page.on_run(run_id, None, "fashion-mnist", None, "centre", "smc", 4, 0, 0, 0, "", 0))
    assert len(updates) == 1 and updates[0][0] == "Cancelled before it started."


def test_choosing_an_image_fills_the_canvas(page: Page, tmp_path: Path) -> None:
    name = inputs.test_image_names()[0]
    source, canvas, info, status = page.on_test_image(name, "fashion-mnist", inputs.DRAWN, 0)
    assert Path(source).is_file() and name in info and status.startswith("Paint the region to hide")
    assert canvas["background"].shape == (336, 336, 3) and canvas["layers"] == []
    centre = page.on_settings(source, "fashion-mnist", "centre", 0)["background"]
    assert (centre[168, 168] == 128).all() and not (canvas["background"][168, 168] == 128).all()
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(photo)
    with pytest.warns(UserWarning) as notices:  # gr.Warning outside a page: a Python warning
        source, canvas, info, _ = page.on_upload(str(photo), "fashion-mnist", inputs.DRAWN, 0)
    assert [str(notice.message) for notice in notices] == [
        "photo.png: resized it from 60×40 to 28×28 (centre-cropped to a square), as the model makes 28×28 grey images",
        "photo.png: converted it to grey, as the model makes 28×28 grey images",
    ]
    assert source == str(photo) and (canvas["background"] == 90).all() and "photo.png" in info
    text = tmp_path / "x.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="^x.txt is not an image that can be read"):
        page.on_upload(str(text), "fashion-mnist", inputs.DRAWN, 0)
