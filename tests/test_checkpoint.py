"""Checkpoints: safetensors + JSON, atomic writes, clear errors on bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from cogenerate.models.toy import ToyDiscriminator, ToyGenerator
from cogenerate.checkpoint import (
    CheckpointError,
    checkpoint_files,
    delete_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from cogenerate.training.gan import init_parameters_


def _modules(seed: int = 0, hidden: int = 8) -> dict[str, torch.nn.Module]:
    rng = torch.Generator().manual_seed(seed)
    return {
        "generator": init_parameters_(ToyGenerator(2, hidden=hidden, depth=2), rng=rng),
        "discriminator": init_parameters_(ToyDiscriminator(2, hidden=hidden, depth=1), rng=rng),
    }


def _save(path: Path, **kwargs) -> dict[str, torch.nn.Module]:
    modules = _modules()
    save_checkpoint(path, modules, {"dataset": "ring", "seed": 0}, iteration=kwargs.pop("iteration", 7), **kwargs)
    return modules


def _assert_one_line_error(error: pytest.ExceptionInfo, file: Path, *words: str) -> None:
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert "\n" not in message, message
    assert str(file) in message, message
    for word in words:
        assert word in message, message


def test_round_trip(tmp_path: Path) -> None:
    modules = _modules()
    optimizer = torch.optim.Adam(modules["generator"].parameters(), lr=1e-3)
    modules["generator"](torch.ones(3, 2)).sum().backward()
    optimizer.step()
    rng = torch.Generator().manual_seed(5)
    prefix = save_checkpoint(
        tmp_path / "run" / "iter_0000007",
        modules,
        {"dataset": "ring", "path": tmp_path},
        optimizers={"generator": optimizer},
        rng_state=rng.get_state(),
        iteration=7,
    )
    assert prefix == tmp_path / "run" / "iter_0000007"
    assert sorted(p.name for p in prefix.parent.iterdir()) == [
        "iter_0000007.json",
        "iter_0000007.optim.pt",
        "iter_0000007.safetensors",
    ]
    document = json.loads((prefix.parent / "iter_0000007.json").read_text())
    assert document["iteration"] == 7 and document["dataset"] == "ring" and document["path"] == str(tmp_path)
    assert document["modules"]["generator"] == {
        "architecture": "toy-generator",
        "kwargs": {"latent_dim": 2, "hidden": 8, "depth": 2, "out_dim": 2},
        "dtype": "float32",
    }
    for given in (prefix, str(prefix) + ".json", str(prefix) + ".safetensors", str(prefix) + ".optim.pt"):
        loaded = load_checkpoint(given)
        assert loaded.iteration == 7 and loaded.path == prefix and loaded.config["dataset"] == "ring"
        for name, module in modules.items():
            assert not loaded.modules[name].training
            for key, value in module.state_dict().items():
                assert torch.equal(loaded.modules[name].state_dict()[key], value)

    # resume path: weights, optimizer state and rng state into fresh objects
    fresh = _modules(seed=1)
    fresh_optimizer = torch.optim.Adam(fresh["generator"].parameters(), lr=1e-3)
    state = restore_checkpoint(prefix, fresh, optimizers={"generator": fresh_optimizer})
    assert state.iteration == 7
    assert torch.equal(state.rng_state, rng.get_state())
    assert torch.equal(fresh["generator"].net[0].weight, modules["generator"].net[0].weight)
    saved_step = optimizer.state_dict()["state"][0]["step"]
    assert torch.equal(fresh_optimizer.state_dict()["state"][0]["step"], saved_step)


def test_float64_modules_keep_their_precision(tmp_path: Path) -> None:
    modules = {"generator": _modules()["generator"].double()}
    save_checkpoint(tmp_path / "ck", modules, {})
    loaded = load_checkpoint(tmp_path / "ck").modules["generator"]
    assert loaded.net[0].weight.dtype == torch.float64
    assert torch.equal(loaded.net[0].weight, modules["generator"].net[0].weight)


def test_float16_storage_halves_the_file_and_loads_back_in_float32(tmp_path: Path) -> None:
    modules = _modules(hidden=64)
    save_checkpoint(tmp_path / "full", modules, {})
    save_checkpoint(tmp_path / "half", modules, {}, storage_dtype=torch.float16)
    size = {name: checkpoint_files(tmp_path / name)["weights"].stat().st_size for name in ("full", "half")}
    assert size["half"] < 0.55 * size["full"]
    assert json.loads(checkpoint_files(tmp_path / "half")["config"].read_text())["modules"]["generator"][
        "storage_dtype"] == "float16"
    loaded = load_checkpoint(tmp_path / "half").modules["generator"]
    weight = modules["generator"].net[0].weight
    assert loaded.net[0].weight.dtype == torch.float32
    assert torch.equal(loaded.net[0].weight, weight.half().float())


def test_atomic_writes_leave_no_temporary_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _save(tmp_path / "a")
    _save(tmp_path / "a")  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.safetensors"]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing_replace(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "a", _modules(seed=3), {"dataset": "other"})
    # the failed write removed its temporary file and left the old checkpoint intact
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "nothing")
    _assert_one_line_error(error, tmp_path / "nothing.json", "not found")
    _save(tmp_path / "ck")
    (tmp_path / "ck.safetensors").unlink()
    with pytest.raises(ValueError) as error:
        load_checkpoint(tmp_path / "ck.json")
    _assert_one_line_error(error, tmp_path / "ck.safetensors", "not found")


def test_truncated_and_corrupt_weights(tmp_path: Path) -> None:
    _save(tmp_path / "ck")
    weights = tmp_path / "ck.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as error:
        load_checkpoint(tmp_path / "ck")
    _assert_one_line_error(error, weights, "checksum")

    # without the checksum the safetensors parser itself must report the damage
    config = tmp_path / "ck.json"
    document = json.loads(config.read_text())
    del document["weights_sha256"]
    config.write_text(json.dumps(document))
    for damaged in (data[: len(data) // 2], data[:5], b"\x00" * 64):
        weights.write_bytes(damaged)
        with pytest.raises(ValueError) as error:
            load_checkpoint(tmp_path / "ck")
        _assert_one_line_error(error, weights, "corrupt or truncated safetensors")


def test_invalid_json(tmp_path: Path) -> None:
    _save(tmp_path / "ck")
    config = tmp_path / "ck.json"
    config.write_text(config.read_text()[:-20])
    with pytest.raises(ValueError) as error:
        load_checkpoint(tmp_path / "ck")
    _assert_one_line_error(error, config, "invalid JSON")
    config.write_text('{"hello": 1}')
    with pytest.raises(ValueError) as error:
        load_checkpoint(tmp_path / "ck")
    _assert_one_line_error(error, config, "not a cogenerate checkpoint")


def _edit_config(path: Path, edit) -> None:
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))


def test_unknown_architecture(tmp_path: Path) -> None:
    _save(tmp_path / "ck")
    config = tmp_path / "ck.json"
    _edit_config(config, lambda d: d["modules"]["generator"].update(architecture="resnet-9000"))
    with pytest.raises(ValueError) as error:
        load_checkpoint(tmp_path / "ck")
    _assert_one_line_error(error, config, "unknown architecture 'resnet-9000'", "generator")


def test_weights_that_do_not_match_the_architecture(tmp_path: Path) -> None:
    _save(tmp_path / "ck")
    config = tmp_path / "ck.json"
    _edit_config(config, lambda d: d["modules"]["generator"]["kwargs"].update(hidden=16))
    with pytest.raises(ValueError) as error:
        load_checkpoint(tmp_path / "ck")
    _assert_one_line_error(error, tmp_path / "ck.safetensors", "do not match its architecture", "shape mismatch", "(16, 2)")

    _edit_config(config, lambda d: d["modules"]["generator"]["kwargs"].update(hidden=8, depth=3))
    with pytest.raises(ValueError) as error:
        load_checkpoint(tmp_path / "ck")
    _assert_one_line_error(error, tmp_path / "ck.safetensors", "missing [net.6.bias, net.6.weight]")

    _edit_config(config, lambda d: d["modules"]["generator"]["kwargs"].update(depth=2, width=3))
    with pytest.raises(ValueError) as error:
        load_checkpoint(tmp_path / "ck")
    _assert_one_line_error(error, config, "does not accept argument(s) ['width']")

    # resuming into modules of another size
    with pytest.raises(ValueError) as error:
        restore_checkpoint(tmp_path / "ck", _modules(hidden=4))
    _assert_one_line_error(error, tmp_path / "ck.safetensors", "do not match its architecture")


def test_save_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "ck", _modules(), {"modules": 1})
    with pytest.raises(ValueError, match="not a registered architecture"):
        save_checkpoint(tmp_path / "ck", {"net": torch.nn.Linear(2, 2)}, {})
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "ck", _modules(), {"thing": object()})
    assert list(tmp_path.iterdir()) == []


def test_latest_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "absent") is None
    for iteration in (20, 100, 5):
        _save(tmp_path / f"iter_{iteration:07d}", iteration=iteration)
    (tmp_path / "notes.json").write_text('{"iteration": 10000}')
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "broken.safetensors").write_text("")
    assert [it for it, _ in list_checkpoints(tmp_path)] == [5, 20, 100]
    assert latest_checkpoint(tmp_path) == tmp_path / "iter_0000100"
    assert checkpoint_files(tmp_path / "iter_0000100.json")["weights"] == tmp_path / "iter_0000100.safetensors"


def test_step_state_round_trips_and_delete_checkpoint(tmp_path: Path) -> None:
    step_state = {"k": torch.tensor(0.25), "count": 3, "history": [1.0, 2.0]}
    _save(tmp_path / "ck", step_state=step_state)
    state = restore_checkpoint(tmp_path / "ck", _modules(seed=4))
    assert state.iteration == 7 and state.rng_state is None
    assert torch.equal(state.step_state["k"], step_state["k"]) and state.step_state["history"] == [1.0, 2.0]
    _save(tmp_path / "plain")
    assert restore_checkpoint(tmp_path / "plain", _modules()).step_state is None
    delete_checkpoint(tmp_path / "ck.json")
    delete_checkpoint(tmp_path / "ck")  # already gone: no error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.json", "plain.safetensors"]
