"""Data-parallel training on 2 CPU processes (gloo), started by the test with torch.multiprocessing.

Each worker writes what it ended with to the shared folder; the test compares the ranks.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from cogenerate.distributed import World
from cogenerate.training import distributed
from cogenerate.training.families import get_family, resolve_settings
from cogenerate.training.loop import train
from cogenerate.training.runs import LOSSES_FILE, train_family

WORLD_SIZE = 2
TINY = {"width": 4, "latent_dim": 4, "batch_size": 8}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(task: str, folder: Path) -> None:
    """Run ``task`` on 2 processes joined in a gloo group (one torch thread each)."""
    mp.spawn(_worker, args=(task, str(folder), free_port()), nprocs=WORLD_SIZE, join=True)


def _worker(rank: int, task: str, folder: str, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        TASKS[task](rank, Path(folder))
    finally:
        dist.destroy_process_group()


def _images() -> torch.Tensor:
    return torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(5)) * 2 - 1


class Stopped(Exception):
    """The job stopped (as torchrun stops every worker when one dies)."""


def _dcgan_run(rank: int, folder: Path, *, stop_at: int | None = None) -> None:
    def on_step(iteration: int, losses: dict[str, float]) -> None:
        if iteration == stop_at:
            raise Stopped

    result = train_family("dcgan", _images(), out=folder / "dcgan", iterations=4, seed=3, settings=TINY,
                          checkpoint_every=2, on_step=on_step)
    torch.save({"result": result._asdict(), "weights": _weights(result_modules(folder / "dcgan"))},
               folder / f"dcgan-{rank}.pt")


def result_modules(run: Path) -> dict[str, nn.Module]:
    from cogenerate.checkpoint import load_checkpoint, latest_checkpoint

    return load_checkpoint(latest_checkpoint(run)).modules


def _weights(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{role}.{key}": value.clone() for role, module in modules.items()
            for key, value in module.state_dict().items()}


def _family_run(rank: int, folder: Path, family: str, **given) -> None:
    """``family`` trained 3 iterations with the plain loop; the modules as each rank has them."""
    settings = resolve_settings(family, {**TINY, **given})
    rng = torch.Generator().manual_seed(1)
    modules = get_family(family).build(settings, (1, 28, 28), rng)
    states = []

    def data(n: int, data_rng: torch.Generator) -> torch.Tensor:
        return torch.rand(n, 1, 28, 28, generator=data_rng) * 2 - 1

    def on_step(iteration: int, losses: dict[str, float]) -> None:
        states.append(losses)

    train(family, modules, data, iterations=3, settings=settings, rng=rng, on_step=on_step)
    torch.save({"weights": _weights(modules), "losses": states}, folder / f"{family}-{rank}.pt")


def _gradients(rank: int, folder: Path) -> None:
    """Two backward passes into a shared graph, one restricted by ``inputs=``: each ends averaged."""
    torch.manual_seed(0)
    first, second = nn.Linear(3, 2), nn.Linear(2, 1)
    handles = distributed.average_gradients([first, second])
    inputs = [torch.full((4, 3), 1.0 + r) for r in range(WORLD_SIZE)]

    def local(x: torch.Tensor) -> list[torch.Tensor]:
        first.zero_grad(set_to_none=True)
        second.zero_grad(set_to_none=True)
        y = second(first(x)).pow(2).sum()
        y.backward(inputs=list(second.parameters()), retain_graph=True)
        (3 * y).backward(inputs=list(first.parameters()))
        return [p.grad.clone() for p in (*first.parameters(), *second.parameters())]

    averaged = local(inputs[rank])
    for handle in handles:
        handle.remove()
    each = [local(x) for x in inputs]  # no hooks now: each rank's own gradients
    expected = [sum(parts) / WORLD_SIZE for parts in zip(*each)]
    torch.save({"averaged": averaged, "expected": expected}, folder / f"gradients-{rank}.pt")


def _gather(rank: int, folder: Path) -> None:
    """Per-image state: each rank updates its shard's rows, every rank gets all of them."""
    at = World(rank, WORLD_SIZE)
    index = torch.tensor([5, 1, 7, 2])
    table = torch.zeros(8, 3)
    rows = distributed.batch_shard(index, at).float().unsqueeze(1).expand(-1, 3) * (1 + rank)
    table[index] = distributed.gather_batch(rows, at)
    torch.save({"table": table}, folder / f"gather-{rank}.pt")


def _run_all(rank: int, folder: Path) -> None:
    try:  # every process stops after iteration 3, past the checkpoint at 2 ...
        _dcgan_run(rank, folder / "broken", stop_at=3)
    except Stopped:
        pass
    _dcgan_run(rank, folder / "broken")  # ... and the same command starts again
    _gather(rank, folder / "whole")
    _dcgan_run(rank, folder / "whole")
    _gradients(rank, folder / "whole")
    _family_run(rank, folder / "whole", "began", architecture="paper", code_dim=4)
    _family_run(rank, folder / "whole", "bayesian-gan", generator_samples=2)


TASKS = {"run": _run_all}


def _load(folder: Path, name: str) -> list[dict]:
    return [torch.load(folder / f"{name}-{rank}.pt", weights_only=False) for rank in range(WORLD_SIZE)]


def _assert_equal_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_two_processes_train_replicas_that_stay_equal_and_resume_after_a_stop(tmp_path: Path) -> None:
    """(A worker killed with ``kill -9`` under ``torchrun --max-restarts``: docs/distributed.md, "Restarts".)"""
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir()
    broken.mkdir()
    spawn("run", tmp_path)  # a run stopped and resumed, the same run uninterrupted, and more

    for rank_result in _load(whole, "gradients"):  # every backward ends with the mean gradient
        for got, want in zip(rank_result["averaged"], rank_result["expected"], strict=True):
            torch.testing.assert_close(got, want)

    expected = torch.zeros(8, 3)
    expected[[5, 1, 7, 2]] = torch.tensor([5.0, 1.0, 14.0, 4.0]).unsqueeze(1)
    for rank_result in _load(whole, "gather"):
        assert torch.equal(rank_result["table"], expected)

    dcgan = _load(whole, "dcgan")  # both ranks hold rank 0's final checkpoint's weights
    _assert_equal_weights(dcgan[0]["weights"], dcgan[1]["weights"])
    assert dcgan[0]["result"]["losses"] == dcgan[1]["result"]["losses"]  # averaged over the ranks
    assert all(math.isfinite(v) for v in dcgan[0]["result"]["losses"].values())
    run = whole / "dcgan"
    assert sorted(p.name for p in run.glob("iter_*.json")) == ["iter_0000002.json", "iter_0000004.json"]
    assert len((run / LOSSES_FILE).read_text().splitlines()) == 1 + 4  # rank 0 alone logs

    resumed = _load(broken, "dcgan")
    assert resumed[0]["result"]["start_iteration"] == 2 == resumed[1]["result"]["start_iteration"]
    _assert_equal_weights(resumed[0]["weights"], dcgan[0]["weights"])  # as if never stopped
    _assert_equal_weights(resumed[1]["weights"], dcgan[0]["weights"])
    assert (broken / "dcgan" / LOSSES_FILE).read_text() == (run / LOSSES_FILE).read_text()

    for family in ("began", "bayesian-gan"):  # state beyond the weights stays in sync too
        ranks = _load(whole, family)
        _assert_equal_weights(ranks[0]["weights"], ranks[1]["weights"])
        assert ranks[0]["losses"] == ranks[1]["losses"]
        assert all(math.isfinite(v) for losses in ranks[0]["losses"] for v in losses.values())
    assert [losses["k"] for losses in _load(whole, "began")[0]["losses"]][0] == 0.0


def test_each_rank_gets_its_shard_of_the_batch_and_its_own_generator() -> None:
    batch = torch.arange(8)
    assert distributed.batch_shard(batch, World(1, 2)).tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="multiple of the 3 processes"):
        distributed.batch_shard(batch, World(0, 3))
    seeds = []
    for rank in range(2):
        shared = torch.Generator().manual_seed(0)
        seeds.append(torch.rand(1, generator=distributed.rank_generator(shared, World(rank, 2))).item())
        assert torch.equal(shared.get_state(), _after_one_draw_of(2))  # the shared stream moves alike
    assert seeds[0] != seeds[1]


def _after_one_draw_of(n: int) -> torch.Tensor:
    shared = torch.Generator().manual_seed(0)
    torch.randint(0, 2**62, (n,), generator=shared)
    return shared.get_state()
