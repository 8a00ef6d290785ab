"""Several processes (gloo, started by the test): the helpers, and sharded work equal to one process's."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cogenerate.batch import complete_dataset, record
from cogenerate.distributed import World, all_reduce_mean_, broadcast_, gather, mean_over_ranks, shard, world
from tests.test_batch import INDICES, OPTIONS, experiment, tiny_problem


def test_one_process_is_the_world_of_size_one() -> None:
    assert world() == World(0, 1) and world().writes and not world().distributed
    assert shard([5, 6, 7]) == [5, 6, 7] and gather([1, 2]) == [1, 2]
    values = torch.tensor([1.0, 2.0])
    assert mean_over_ranks(values) is values
    broadcast_([values])
    all_reduce_mean_([values])
    assert values.tolist() == [1.0, 2.0]


def test_shards_partition_the_items_round_robin() -> None:
    items = list(range(7))
    shares = [shard(items, at=World(rank, 3)) for rank in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _worker(rank: int, folder: str, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        values = torch.tensor([float(rank), 10.0 * rank], dtype=torch.float64)
        sent = [torch.full((2,), float(rank)), torch.full((3,), 1.0 + rank, dtype=torch.float64)]
        broadcast_(sent)
        averaged = [torch.full((2,), float(rank))]
        all_reduce_mean_(averaged)
        generator, images = tiny_problem()
        results = complete_dataset(generator, images, INDICES, **OPTIONS)
        torch.save({
            "world": world(), "shard": shard(list(range(5))), "gather": gather([rank, rank]),
            "mean": mean_over_ranks(values), "sent": sent, "averaged": averaged,
            "records": [record(r) for r in results], "estimates": [r.estimate for r in results],
            "experiment": experiment(generator, images),
        }, Path(folder) / f"rank-{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_share_work_out_and_return_what_one_process_returns(tmp_path: Path) -> None:
    torch.set_num_threads(1)  # as the workers: the same kernels
    generator, images = tiny_problem()
    single = complete_dataset(generator, images, INDICES, **OPTIONS)
    single_experiment = experiment(generator, images)
    mp.spawn(_worker, args=(str(tmp_path), free_port()), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank-{rank}.pt", weights_only=False)
        assert got["world"] == World(rank, 2)
        assert got["shard"] == [[0, 2, 4], [1, 3]][rank] and got["gather"] == [0, 0, 1, 1]
        assert got["mean"].tolist() == [0.5, 5.0]
        assert got["sent"][0].tolist() == [0.0, 0.0] and got["sent"][1].tolist() == [1.0, 1.0, 1.0]
        assert got["averaged"][0].tolist() == [0.5, 0.5]
        # batch completion: each image completed on one rank, all records everywhere, as one process
        assert got["records"] == [record(r) for r in single]
        for estimate, result in zip(got["estimates"], single, strict=True):
            assert torch.equal(estimate, result.estimate)
        for key, value in single_experiment.items():  # `cogen reproduce images` shares out the same way
            if key != "seconds":
                torch.testing.assert_close(torch.as_tensor(got["experiment"][key]), torch.as_tensor(value), rtol=0,
                                           atol=0, equal_nan=True, msg=key)
