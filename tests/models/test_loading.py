"""load_model: every kind of spec gives a GenerativeModel; save_model round-trips; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cogenerate.checkpoint import CheckpointError, save_checkpoint
from cogenerate.models.base import GenerativeModel, prior_config
from cogenerate.models.dcgan import DCGANGenerator, weights_init
from cogenerate.models.loading import infer_family, load_model, save_model
from cogenerate.models.pretrained import load_pretrained_model
from cogenerate.models.toy import ToyDiscriminator, ToyGenerator
from cogenerate.training.gan import init_parameters_


def _toy(seed: int = 0) -> dict[str, torch.nn.Module]:
    rng = torch.Generator().manual_seed(seed)
    return {"generator": init_parameters_(ToyGenerator(3, hidden=8, depth=1), rng=rng),
            "discriminator": init_parameters_(ToyDiscriminator(2, hidden=8, depth=1), rng=rng)}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _one_line(error: pytest.ExceptionInfo, *words: str) -> None:
    message = str(error.value)
    assert isinstance(error.value, ValueError) and "\n" not in message, message
    for word in words:
        assert word in message, message


def test_a_model_is_returned_as_is_and_a_module_is_wrapped() -> None:
    parts = _toy()
    model = GenerativeModel(family="toy-gan", parts=parts, latent_dim=3)
    assert load_model(model) is model
    wrapped = load_model(parts["generator"])
    assert wrapped.family == "custom" and wrapped.generator is parts["generator"] and wrapped.latent_dim == 3
    plain = load_model(lambda z: z * 2, latent_dim=4)
    assert plain.latent_dim == 4 and torch.equal(plain.generator(torch.ones(1, 4)), torch.full((1, 4), 2.0))
    with pytest.raises(ValueError) as error:
        load_model(torch.nn.Linear(2, 3))
    _one_line(error, "latent_dim=", "--latent-dim")
    with pytest.raises(ValueError) as error:
        load_model(42)
    _one_line(error, "cannot make a model of a int")


def test_shipped_model_name() -> None:
    model = load_model("mnist")
    assert model.family == "dcgan" and model.x_shape == (1, 28, 28) and model.latent_dim == 100
    assert set(model.parts) == {"generator", "discriminator"} and model.prior is None
    assert model.command.startswith("cogen") and not model.generator.training
    assert _same_weights(model.generator, load_pretrained_model("mnist").generator)


def test_checkpoint_paths_and_run_folders(tmp_path: Path) -> None:
    parts = _toy()
    save_checkpoint(tmp_path / "run" / "iter_0000002", _toy(1), {"family": "toy-gan"}, iteration=2)
    save_checkpoint(tmp_path / "run" / "iter_0000010", parts, {"family": "toy-gan", "command": "train it"},
                    iteration=10)
    for spec in ("iter_0000010", "iter_0000010.json", "iter_0000010.safetensors"):
        model = load_model(tmp_path / "run" / spec)
        assert model.family == "toy-gan" and model.x_shape == (2,) and model.command == "train it"
        assert _same_weights(model.generator, parts["generator"])
        assert _same_weights(model.discriminator, parts["discriminator"])
    from_folder = load_model(str(tmp_path / "run"))
    assert from_folder.config["iteration"] == 10 and _same_weights(from_folder.generator, parts["generator"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError) as error:
        load_model(tmp_path / "empty")
    _one_line(error, "holds no checkpoint")
    with pytest.raises(ValueError) as error:
        load_model("no-such-model")
    _one_line(error, "unknown model 'no-such-model'", "fashion-mnist", "module.path:factory")


def test_old_checkpoints_get_their_family_from_the_architecture(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "toy", _toy(), {})
    assert load_model(tmp_path / "toy").family == "toy-gan"
    generator = weights_init(DCGANGenerator(4, image_size=28, channels=1, width=4), rng=torch.Generator())
    save_checkpoint(tmp_path / "dc", {"generator": generator}, {})
    model = load_model(tmp_path / "dc")
    assert model.family == "dcgan" and model.x_shape == (1, 28, 28) and not model.has_critic
    assert infer_family({"modules": {"generator": {"architecture": "resnet"}}}) == "custom"


def test_save_model_round_trips_family_prior_scale_and_parts(tmp_path: Path) -> None:
    parts = _toy()
    uniform = torch.distributions.Independent(torch.distributions.Uniform(-torch.ones(3), torch.ones(3)), 1)
    model = GenerativeModel(family="toy-ebm", parts={"generator": parts["generator"], "energy": parts["discriminator"]},
                            latent_dim=3, x_shape=(2,), prior=uniform, energy_scale=2.5, command="make it")
    prefix = save_model(tmp_path / "model", model, config={"note": "hi"}, iteration=4)
    loaded = load_model(prefix)
    assert (loaded.family, loaded.latent_dim, loaded.x_shape, loaded.energy_scale, loaded.command) == (
        "toy-ebm", 3, (2,), 2.5, "make it")
    assert prior_config(loaded.prior) == {"name": "uniform", "low": -1.0, "high": 1.0}
    assert loaded.config["note"] == "hi" and loaded.config["iteration"] == 4
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded.log_ratio(x), model.log_ratio(x))
    again = load_model(save_model(tmp_path / "again", loaded))  # the loaded config's bookkeeping is dropped
    assert again.config["iteration"] == 4 and _same_weights(again.energy, parts["discriminator"])
    with pytest.raises(ValueError, match="cannot save the 'generator' part: a function"):
        save_model(tmp_path / "bad", GenerativeModel.from_generator(lambda z: z, latent_dim=2))


def test_corrupt_checkpoint_is_a_one_line_checkpoint_error(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck", _toy(), {})
    weights = tmp_path / "ck.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "ck")
    _one_line(error, str(weights), "checksum")
    save_checkpoint(tmp_path / "critic", {"discriminator": _toy()["discriminator"]}, {})
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "critic.json")
    _one_line(error, "no module named 'generator'")
    save_checkpoint(tmp_path / "prior", _toy(), {"prior": {"name": "cauchy"}})
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "prior")
    _one_line(error, "prior.json", "unknown latent prior")


FACTORY_MODULE = '''
import torch
from cogenerate.models.base import GenerativeModel
from cogenerate.models.toy import ToyGenerator

def generator():
    torch.manual_seed(0)
    return ToyGenerator(5, hidden=4, depth=1)

def model():
    return GenerativeModel(family="mine", parts={"generator": generator()}, latent_dim=5, x_shape=(2,))

def no_latent():
    return torch.nn.Linear(3, 2)

def broken():
    raise RuntimeError("out of\\nmemory")

def number():
    return 7

VALUE = 3
'''


def test_module_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cogen_test_factory.py").write_text(FACTORY_MODULE)
    monkeypatch.chdir(tmp_path)  # a user's model file in the current folder
    monkeypatch.delitem(__import__("sys").modules, "cogen_test_factory", raising=False)
    state = torch.get_rng_state()
    made = load_model("cogen_test_factory:generator")
    torch.set_rng_state(state)
    assert made.family == "custom" and made.latent_dim == 5 and isinstance(made.generator, ToyGenerator)
    model = load_model("cogen_test_factory:model")
    assert model.family == "mine" and model.x_shape == (2,)
    assert load_model("cogen_test_factory:no_latent", latent_dim=3).latent_dim == 3
    for spec, words in [
        ("cogen_test_factory:no_latent", ("--latent-dim",)),
        ("cogen_test_factory:broken", ("calling broken() failed", "RuntimeError: out of memory")),
        ("cogen_test_factory:number", ("returned a int", "nn.Module")),
        ("cogen_test_factory:missing", ("has no attribute 'missing'",)),
        ("cogen_test_factory:VALUE", ("not a function",)),
        ("cogen_no_such_module:make", ("cannot import 'cogen_no_such_module'", "ModuleNotFoundError")),
    ]:
        with pytest.raises(ValueError) as error:
            load_model(spec)
        _one_line(error, spec, *words)


def test_model_file_records_what_load_model_needs(tmp_path: Path) -> None:
    save_model(tmp_path / "m", GenerativeModel(family="toy-gan", parts=_toy(), latent_dim=3))
    document = json.loads((tmp_path / "m.json").read_text())
    assert {key: document[key] for key in ("family", "latent_dim", "prior", "energy_scale", "conditional")} == {
        "family": "toy-gan", "latent_dim": 3, "prior": {"name": "normal"}, "energy_scale": 1.0, "conditional": False}
