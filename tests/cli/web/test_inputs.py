"""cogenerate.cli.web.inputs: the image a page run completes and the hidden region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cogenerate.data.demo import load_demo_images
from cogenerate.data.masks import mask_from_file
from cogenerate.cli.web import inputs


def test_shipped_test_images_are_written_exactly(tmp_path: Path) -> None:
    names = inputs.test_image_names()
    demo = load_demo_images()
    assert len(names) == demo.images.shape[0] and names[0] == f"{demo.labels[0]} (test #{demo.test_index[0]})"
    path = inputs.write_test_image(names[2], tmp_path)
    page = inputs.page_image(path, side=28, channels=1, folder=tmp_path)
    assert torch.equal(page.image, demo.images[2]) and page.notices == () and page.size == (28, 28)
    with pytest.raises(ValueError, match="unknown test image 'nope'"):
        inputs.write_test_image("nope", tmp_path)


def test_a_file_that_is_not_an_image_is_refused_in_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=r"^notes.txt is not an image that can be read \(upload a PNG"):
        inputs.page_image(text, side=28, channels=1, folder=tmp_path)
    with pytest.raises(ValueError, match="no such file"):
        inputs.page_image(tmp_path / "gone.png", side=28, channels=1, folder=tmp_path)


def test_resizing_and_colour_changes_are_noticed(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(path)
    page = inputs.page_image(path, side=28, channels=1, folder=tmp_path)
    assert page.path == path and page.image.shape == (1, 28, 28)
    assert page.notices == (
        "photo.png: resized it from 60×40 to 28×28 (centre-cropped to a square), as the model makes 28×28 grey images",
        "photo.png: converted it to grey, as the model makes 28×28 grey images",
    )


def test_a_huge_image_is_reduced_first_with_a_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "MAX_PIXELS", 100 * 100)
    monkeypatch.setattr(inputs, "REDUCED_SIDE", 50)
    path = tmp_path / "huge.png"
    Image.fromarray(np.arange(300 * 200, dtype=np.uint32).reshape(200, 300).astype(np.uint8)).save(path)
    page = inputs.page_image(path, side=28, channels=1, folder=tmp_path / "inputs")
    assert page.path == tmp_path / "inputs" / "huge-reduced.png" and page.size == (50, 33)
    assert page.notices[0] == "huge.png is 300×200 pixels (0 megapixels): reduced it to 50×33 first"
    assert page.notices[1].startswith("huge.png: resized it from 50×33 to 28×28")
    small, notices = inputs.reduce_if_huge(tmp_path / "inputs" / "huge-reduced.png", tmp_path)
    assert notices == () and small.name == "huge-reduced.png"


def test_a_small_upload_hints_at_super_resolution(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((7, 7), np.uint8)).save(path)
    notices = inputs.page_image(path, side=28, channels=1, folder=tmp_path).notices
    assert any(inputs.SUPER_RESOLUTION in notice for notice in notices)


def test_super_resolution_input_pools_back_to_the_upload_exactly(tmp_path: Path) -> None:
    low = np.random.default_rng(0).integers(0, 256, (7, 7), dtype=np.uint8)
    path = tmp_path / "low.png"
    Image.fromarray(low).save(path)
    high_path, factor = inputs.super_resolution_input(path, side=28, channels=1, folder=tmp_path / "sr")
    assert factor == 4 and high_path.parent == tmp_path / "sr"
    high = inputs.page_image(high_path, side=28, channels=1, folder=tmp_path).image
    pooled = torch.nn.functional.avg_pool2d(high.unsqueeze(0), 4)[0, 0]
    torch.testing.assert_close(pooled, torch.from_numpy(low).float() / 127.5 - 1, atol=1e-6, rtol=0)
    for size in ((8, 8), (7, 14), (28, 28)):
        odd = tmp_path / f"odd{size}.png"
        Image.fromarray(np.zeros(size[::-1], np.uint8)).save(odd)
        with pytest.raises(ValueError, match=r"super-resolution needs a small square upload whose side divides 28 "
                                             r"\(e.g. 14×14 or 7×7 or 4×4\)"):
            inputs.super_resolution_input(odd, side=28, channels=1, folder=tmp_path)


def _layer(side: int, painted: tuple[slice, slice]) -> np.ndarray:
    layer = np.zeros((side, side, 4), np.uint8)
    layer[painted] = (255, 0, 255, 255)
    return layer


def test_the_drawn_layer_becomes_the_model_size_mask() -> None:
    k = inputs.drawing_scale(28)
    assert k == 12
    # rows 5..9 of model pixels fully painted; row 10 painted over 6 of its 12 canvas rows (half: hidden),
    # row 11 over 5 (less than half: observed); columns 3..20
    layer = _layer(28 * k, (slice(5 * k, 10 * k + 6), slice(3 * k, 21 * k)))
    layer[11 * k:11 * k + 5, 3 * k:21 * k] = (255, 0, 255, 128)
    mask = inputs.mask_from_layers([layer], 28)
    expected = torch.ones(1, 1, 28, 28)
    expected[..., 5:11, 3:21] = 0
    assert torch.equal(mask, expected)
    # a second, partly overlapping layer adds to the hidden region; an empty drawing hides nothing
    both = inputs.mask_from_layers([layer, _layer(28 * k, (slice(0, k), slice(0, k)))], 28)
    assert both[0, 0, 0, 0] == 0 and int((both == 0).sum()) == 6 * 18 + 1
    assert torch.equal(inputs.mask_from_layers([], 28), torch.ones(1, 1, 28, 28))
    assert torch.equal(inputs.mask_from_layers(None, 28), torch.ones(1, 1, 28, 28))


def test_masks_that_hide_nothing_or_everything_are_refused() -> None:
    with pytest.raises(ValueError, match="^nothing is hidden: paint over the part of the image to complete"):
        inputs.check_hidden(torch.ones(1, 1, 28, 28), drawn=True)
    with pytest.raises(ValueError, match="^nothing is hidden: pick another hidden region"):
        inputs.check_hidden(torch.ones(1, 1, 28, 28))
    with pytest.raises(ValueError, match="^every pixel is hidden: leave part of the image visible"):
        inputs.check_hidden(torch.zeros(1, 1, 28, 28), drawn=True)
    inputs.check_hidden(torch.tensor([[[[0.0, 1.0]]]]))


def test_the_written_mask_is_read_back_by_cogen_complete(tmp_path: Path) -> None:
    mask = torch.ones(1, 1, 28, 28)
    mask[..., 2:9, 4:20] = 0
    path = inputs.write_mask(mask, tmp_path / "run" / "mask.png")
    assert torch.equal(mask_from_file(path, 28), mask)


def test_preset_views_and_the_drawing_background() -> None:
    image = load_demo_images().images[0]
    centre = inputs.preset_view(image, "centre")
    assert torch.equal(centre[:, :7], image[:, :7]) and not torch.equal(centre, image)
    assert torch.equal(inputs.preset_view(image, "box", seed=3), inputs.preset_view(image, "box", seed=3))
    low = inputs.preset_view(image, "sr4")
    assert torch.equal(low[:, :4, :4], low[:, :1, :1].expand(1, 4, 4))
    with pytest.raises(ValueError, match="unknown observation spec 'nope'"):
        inputs.preset_view(image, "nope")
    background = inputs.drawing_background(image)
    assert background.shape == (336, 336, 3) and background.dtype == np.uint8
    assert (background[:12, :12] == background[0, 0]).all()
