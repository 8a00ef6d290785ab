"""cogenerate.cli.web.runs: a page run is `cogen complete`, streamed and cancellable."""

from __future__ import annotations

import json
import shlex
import threading
from pathlib import Path

import pytest
import torch

from cogenerate.cli import main
from cogenerate.cli.web import inputs
from cogenerate.cli.web.runs import (
    Finished, RunRegistry, Settings, Snapshot, command_argv, parse_command, prepare, stream,
)
from tests.cli.web.helpers import assert_same_numbers, numbers


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return inputs.write_test_image(inputs.test_image_names()[1], tmp_path / "inputs")


def test_the_command_line_of_a_run(tmp_path: Path) -> None:
    settings = Settings(model="fashion-mnist", image=Path("x.png"), mask="file:m.png", method="smc", chains=4,
                        budget=30, noise_std="auto", seed=3, ground_truth=False)
    argv = command_argv(settings, tmp_path)
    assert argv == ["complete", "--model", "fashion-mnist", "--image", "x.png", "--mask", "file:m.png", "--method",
                    "smc", "--chains", "4", "--budget", "30", "--noise-std", "auto", "--seed", "3",
                    "--no-ground-truth", "--out", str(tmp_path)]
    args = parse_command(argv)
    assert (args.chains, args.budget, args.steps, args.noise_std, args.no_ground_truth) == (4, 30, None, "auto", True)
    assert args.argv == argv
    with pytest.raises(ValueError, match="^argument --chains: invalid int value: 'many'$"):
        parse_command(["complete", "--model", "m", "--mask", "centre", "--chains", "many"])


def test_the_page_report_matches_cogen_complete(image: Path, tmp_path: Path) -> None:
    """The numbers the page offers are those of the command its report names (same seed)."""
    mask = torch.ones(1, 1, 28, 28)
    mask[..., 6:15, 4:22] = 0
    mask_file = inputs.write_mask(mask, tmp_path / "page" / "mask.png")
    settings = Settings(model="fashion-mnist", image=image, mask=f"file:{mask_file}", chains=4, steps=20, seed=7)
    updates = list(stream(prepare(settings, tmp_path / "page"), cancel=threading.Event(), interval=0.05))
    done = updates[-1]
    assert isinstance(done, Finished) and not done.cancelled
    assert all(isinstance(update, Snapshot) for update in updates[:-1])
    page = json.loads(done.files["json"].read_text())
    assert page == done.report and page["hidden_pixels"] == 9 * 18

    argv = shlex.split(page["command"])[1:]
    assert argv[-2:] == ["--out", str(tmp_path / "page")]
    assert main(["--quiet", "--threads", "1", *argv[:-1], str(tmp_path / "command")]) == 0
    command = json.loads((tmp_path / "command" / "completion.json").read_text())
    assert_same_numbers(page, command)
    assert numbers(page["weights"]) == 4 and numbers(page["metrics"]) > 5


def test_snapshots_show_the_chains_while_they_run(image: Path, tmp_path: Path) -> None:
    prepared = prepare(Settings(model="fashion-mnist", image=image, mask="centre", method="ais", chains=3, steps=40),
                       tmp_path)
    updates = list(stream(prepared, cancel=threading.Event(), interval=0.01))
    snapshots = [update for update in updates if isinstance(update, Snapshot)]
    assert snapshots, "no snapshot while running"
    first = snapshots[0]
    assert first.completions.shape == (3, 1, 28, 28) and first.mean.shape == first.std.shape == (1, 28, 28)
    torch.testing.assert_close(first.weights.sum(), torch.tensor(1.0))
    assert 1.0 - 1e-6 <= first.ess <= 3.0 + 1e-6 and 0.0 <= first.fraction <= 1.0 and first.beta is not None
    seen = prepared.mask[0, 0] > 0
    assert torch.equal(first.completions[:, 0][:, seen], prepared.observed[0, 0][seen].expand(3, -1))
    assert torch.equal(first.std[0][seen], torch.zeros(int(seen.sum())))
    assert [s.step for s in snapshots] == sorted(s.step for s in snapshots)


def test_cancel_stops_the_sampler_with_a_partial_result(image: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    prepared = prepare(Settings(model="fashion-mnist", image=image, mask="top-half", method="ais", chains=2,
                                steps=500), tmp_path)
    done = list(stream(prepared, cancel=cancel))[-1]
    assert isinstance(done, Finished) and done.cancelled
    assert any("stopped by the callback" in warning for warning in done.report["diagnostics"]["warnings"])
    assert done.out.grad_evals < 500 and done.files["json"].is_file()


def test_leaving_the_page_stops_the_sampler(image: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    prepared = prepare(Settings(model="fashion-mnist", image=image, mask="centre", method="ais", chains=2,
                                steps=3000), tmp_path)
    updates = stream(prepared, cancel=cancel, interval=0.01)
    assert isinstance(next(updates), Snapshot)
    updates.close()  # what Gradio does when the page goes away: the worker must not run on
    assert cancel.is_set()
    assert not any(thread.name.startswith("cogen-serve-run") for thread in threading.enumerate())


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"model": "no-such-model"}, r"^model 'no-such-model' failed to load: "),
     ({"chains": 0}, "^chains must be at least 1, got 0$"),
     ({"method": "gd", "noise_std": "auto"}, r"^noise_std='auto' needs a method that fits the noise scale"),
     ({"mask": "nope"}, r"^unknown observation spec 'nope'")],
)
def test_bad_settings_are_one_line_errors(image: Path, tmp_path: Path, changes: dict, message: str) -> None:
    settings = {"model": "fashion-mnist", "image": image, "mask": "centre", **changes}
    with pytest.raises(ValueError, match=message):
        prepare(Settings(**settings), tmp_path)


def test_a_drawn_mask_must_hide_something_and_not_everything(image: Path, tmp_path: Path) -> None:
    nothing = inputs.write_mask(torch.ones(1, 1, 28, 28), tmp_path / "nothing.png")
    with pytest.raises(ValueError, match="hides no pixel"):  # cogen complete's own check of mask files
        prepare(Settings(model="fashion-mnist", image=image, mask=f"file:{nothing}"), tmp_path)
    everything = inputs.write_mask(torch.zeros(1, 1, 28, 28), tmp_path / "everything.png")
    with pytest.raises(ValueError, match="^every pixel is hidden"):
        prepare(Settings(model="fashion-mnist", image=image, mask=f"file:{everything}"), tmp_path)


def test_the_registry_cancels_known_runs_once() -> None:
    runs = RunRegistry()
    flag = runs.open("a")
    assert runs.open("a") is flag and not flag.is_set()
    assert runs.cancel("a") and flag.is_set() and not runs.cancel("a")
    assert not runs.cancel("b") and not runs.cancel(None)
    runs.close("a")
    assert not runs.open("a").is_set()


@pytest.mark.parametrize("model", ["fashion-mnist-vae", "fashion-mnist-bayesian-gan"])
def test_other_families_complete_in_the_page(model: str, image: Path, tmp_path: Path) -> None:
    prepared = prepare(Settings(model=model, image=image, mask="centre", chains=2, steps=5), tmp_path)
    done = list(stream(prepared, cancel=threading.Event()))[-1]
    assert isinstance(done, Finished) and done.report["model_family"] == model.removeprefix("fashion-mnist-")
    assert done.report["fitted_noise_std"] > 0 and done.files["figure"].is_file()
