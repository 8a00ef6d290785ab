"""``cogen complete --indices``: a range of data-set images, on one process and under torchrun."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from cogenerate.cli import main
from cogenerate.cli.complete_batch import parse_indices
from tests.cli.helpers import error_line

REPO = Path(__file__).resolve().parents[2]
ARGV = ["--threads", "1", "--quiet", "complete", "--model", "tests.cli.helpers:grey_model", "--dataset", "digits",
        "--indices", "4:7,0", "--mask", "box", "--method", "smc", "--chains", "3", "--budget", "6", "--seed", "2"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The run of :data:`ARGV` on one process: its folder and what it printed."""
    folder = tmp_path_factory.mktemp("one")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*ARGV, "--out", str(folder)]) == 0
    return folder, printed.getvalue()


def test_batch_mode_writes_one_record_per_image_and_a_summary(one_process: tuple[Path, str]) -> None:
    tmp_path, out = one_process
    assert "4 images of digits (test)" in out and "| box |" in out
    report = json.loads((tmp_path / "results.json").read_text())
    assert [r["index"] for r in report["records"]] == [4, 5, 6, 0]
    assert report["images"] == 4 and report["mask"] == "box" and report["seed"] == 2
    for r in report["records"]:
        assert set(r["metrics"]) == {"hidden_mse", "ssim", "within_2_std", "crps"}
        assert math.isfinite(r["log_evidence"]) and 0 < r["grad_evals"] <= 6
    assert report["summary"]["hidden_mse"]["n"] == 4
    assert "| mask | hidden MSE |" in (tmp_path / "summary.md").read_text()
    tensors = load_file(str(tmp_path / "estimates.safetensors"))
    assert tensors["indices"].tolist() == [4, 5, 6, 0] and tensors["estimates"].shape == (4, 1, 16, 16)
    assert (tmp_path / "estimates.png").stat().st_size > 0
    assert json.loads((tmp_path / "run.json").read_text())["processes"] == 1


def test_parse_indices() -> None:
    assert parse_indices("0:3", 10) == [0, 1, 2]
    assert parse_indices("7, 2:4", 10) == [7, 2, 3]
    assert parse_indices("8:", 10) == [8, 9]
    for text, message in (("3:3", "empty range"), ("a:b", "expected START:STOP"), ("1,1", "twice"),
                          ("9:12", "out of range")):
        with pytest.raises(ValueError, match=message):
            parse_indices(text, 10)


def test_batch_mode_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["complete", "--model", "tests.cli.helpers:grey_model", "--mask", "box", "--out", str(tmp_path)]
    assert "out of range" in error_line(capsys, [*base, "--dataset", "digits", "--indices", "0:1000"])
    assert "without --image or --index" in error_line(capsys, [*base, "--dataset", "digits", "--indices", "0:2",
                                                                "--index", "1"])
    assert "give --dataset" in error_line(capsys, [*base, "--indices", "0:2"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_torchrun_shards_the_images_and_rank_0_writes_what_one_process_writes(one_process: tuple[Path, str],
                                                                             tmp_path: Path) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                "--master-port", str(_free_port())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*torchrun, "-m", "cogenerate", *ARGV, "--out", str(tmp_path / "two")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("4 images of digits") == 1  # rank 1 prints nothing
    for name in ("results.json", "summary.md", "estimates.safetensors"):
        assert (tmp_path / "two" / name).read_bytes() == (one_process[0] / name).read_bytes(), name
    assert json.loads((tmp_path / "two" / "run.json").read_text())["processes"] == 2
