"""The explicit GAN training loop: learning, checkpoints, deterministic resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cogenerate.data.toy import ring_of_gaussians
from cogenerate.models.toy import ToyDiscriminator, ToyGenerator
from cogenerate.checkpoint import list_checkpoints, load_checkpoint
from cogenerate.training.gan import init_parameters_, train_gan, train_toy_gan



def _ring(n: int, rng: torch.Generator) -> torch.Tensor:
    return ring_of_gaussians(n, rng=rng)


def _tiny(seed: int, hidden: int = 16) -> tuple[ToyGenerator, ToyDiscriminator]:
    rng = torch.Generator().manual_seed(seed)
    with torch.device("meta"):  # skip the default initialisation, which uses the global RNG
        generator = ToyGenerator(2, hidden=hidden, depth=2)
        discriminator = ToyDiscriminator(2, hidden=hidden, depth=2)
    generator = init_parameters_(generator.to_empty(device="cpu"), rng=rng)
    discriminator = init_parameters_(discriminator.to_empty(device="cpu"), rng=rng)
    return generator, discriminator


def _radius_error(generator: ToyGenerator) -> float:
    """Mean | ‖G(z)‖ − 1 |: how far samples are from the unit circle of the modes."""
    z = torch.randn(2000, 2, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        return (generator(z).norm(dim=1) - 1).abs().mean().item()


def test_short_training_moves_samples_onto_the_ring() -> None:
    generator, discriminator = _tiny(0)
    before = _radius_error(generator)
    seen: list[int] = []
    stats = train_gan(
        generator, discriminator, _ring, iterations=300, batch_size=64, lr_g=2e-3, lr_d=2e-3,
        rng=torch.Generator().manual_seed(1), on_step=lambda i, s: seen.append(i),
    )
    after = _radius_error(generator)
    assert before > 0.5  # an untrained generator collapses near the origin
    assert after < 0.5 * before, (before, after)
    assert seen == list(range(1, 301))
    assert stats["iteration"] == 300 and stats["start_iteration"] == 0 and stats["checkpoint"] is None
    assert 0 < stats["loss_d"] < 3 and 0 < stats["loss_g"] < 5


def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path: Path) -> None:
    options = dict(iterations=50, batch_size=32, lr_g=1e-3, lr_d=1e-3, checkpoint_every=20, keep=(10,))
    global_state = torch.get_rng_state()

    generator, discriminator = _tiny(0)
    full = train_gan(generator, discriminator, _ring, rng=torch.Generator().manual_seed(7),
                     checkpoint_dir=tmp_path / "full", **options)
    assert full["checkpoint"] == tmp_path / "full" / "iter_0000050"
    # keep=10 and the final one stay; periodic 20 and 40 were pruned once superseded
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == [
        f"iter_{i:07d}.{ext}" for i in (10, 50) for ext in ("json", "optim.pt", "safetensors")
    ]

    class Killed(Exception):
        pass

    def kill_at_30(iteration: int, stats: dict[str, float]) -> None:
        if iteration == 30:
            raise Killed

    generator_b, discriminator_b = _tiny(0)
    with pytest.raises(Killed):
        train_gan(generator_b, discriminator_b, _ring, rng=torch.Generator().manual_seed(7),
                  checkpoint_dir=tmp_path / "resumed", on_step=kill_at_30, **options)
    assert [it for it, _ in list_checkpoints(tmp_path / "resumed")] == [10, 20]

    # a new process: fresh modules and a differently seeded rng; everything comes from the checkpoint
    generator_c, discriminator_c = _tiny(123)
    resumed = train_gan(generator_c, discriminator_c, _ring, rng=torch.Generator().manual_seed(0),
                        checkpoint_dir=tmp_path / "resumed", **options)
    assert resumed["start_iteration"] == 20 and resumed["resumed_from"] == tmp_path / "resumed" / "iter_0000020"
    for a, b in zip([*generator.parameters(), *discriminator.parameters()],
                    [*generator_c.parameters(), *discriminator_c.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert [it for it, _ in list_checkpoints(tmp_path / "resumed")] == [10, 50]
    final = load_checkpoint(tmp_path / "resumed" / "iter_0000050")
    assert final.iteration == 50 and final.config["train_gan"]["batch_size"] == 32
    torch.testing.assert_close(final.modules["generator"].net[0].weight, generator.net[0].weight, rtol=1e-6, atol=1e-7)

    # nothing left to do: returns at once
    again = train_gan(generator_c, discriminator_c, _ring, rng=torch.Generator(), checkpoint_dir=tmp_path / "resumed", **options)
    assert again["start_iteration"] == 50 and again["iteration"] == 50
    assert torch.equal(torch.get_rng_state(), global_state)


def test_train_toy_gan_returns_snapshots() -> None:
    global_state = torch.get_rng_state()
    torch.set_num_threads(2)
    snapshots = train_toy_gan(iterations=6, keep=(3, 6, 100), seed=0)
    assert torch.get_num_threads() == 2  # the temporary single-thread setting was restored
    assert list(snapshots) == [3, 6]
    assert all(isinstance(g, ToyGenerator) and not g.training for g in snapshots.values())
    assert not torch.equal(snapshots[3].net[0].weight, snapshots[6].net[0].weight)
    repeat = train_toy_gan(iterations=6, keep=(3,), seed=0)
    assert torch.equal(repeat[6].net[0].weight, snapshots[6].net[0].weight)
    assert torch.equal(torch.get_rng_state(), global_state)


def test_train_toy_gan_resumes_from_kept_checkpoints(tmp_path: Path) -> None:
    first = train_toy_gan(iterations=4, keep=(2, 4), seed=1, checkpoint_dir=tmp_path)
    second = train_toy_gan(iterations=4, keep=(2, 4), seed=1, checkpoint_dir=tmp_path)  # all from files
    for iteration in (2, 4):
        assert torch.equal(first[iteration].net[0].weight, second[iteration].net[0].weight)


def test_init_parameters_is_seeded_and_uses_the_default_bounds() -> None:
    a = init_parameters_(ToyGenerator(hidden=32), rng=torch.Generator().manual_seed(0))
    b = init_parameters_(ToyGenerator(hidden=32), rng=torch.Generator().manual_seed(0))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    hidden = a.net[2].weight  # fan_in 32 -> U(-1/sqrt(32), 1/sqrt(32))
    assert hidden.abs().max().item() <= 32**-0.5
    assert hidden.abs().max().item() > 0.9 * 32**-0.5
