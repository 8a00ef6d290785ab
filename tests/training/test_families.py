"""The family registry: lookup, registration, settings with defaults and one-line errors."""

from __future__ import annotations

import pytest

from cogenerate.training.dcgan import DCGAN, gan_step, make_dcgan_optimizers
from cogenerate.training.families import (
    COMMON_SETTINGS,
    FAMILIES,
    Family,
    Option,
    family_names,
    get_family,
    register_family,
    resolve_settings,
)


def test_dcgan_is_registered_with_its_options() -> None:
    assert "dcgan" in family_names()
    assert get_family("dcgan") is DCGAN and get_family(DCGAN) is DCGAN
    assert DCGAN.losses == ("loss_d", "loss_g") and DCGAN.label == "DCGAN"
    assert {name: option.default for name, option in DCGAN.options.items()} == {"width": 64, "lr": 2e-4}
    assert all(option.help for option in (*DCGAN.options.values(), *COMMON_SETTINGS.values()))


def test_unknown_family_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown model family 'nope'; known: .*dcgan"):
        get_family("nope")


def test_resolve_settings_fills_defaults_and_checks_values() -> None:
    assert resolve_settings("dcgan") == {"batch_size": 64, "latent_dim": 100, "width": 64, "lr": 2e-4}
    settings = resolve_settings("dcgan", {"width": 8, "lr": 1, "batch_size": None})
    assert settings["width"] == 8 and settings["lr"] == 1.0 and isinstance(settings["lr"], float)
    assert settings["batch_size"] == 64  # None counts as not given
    for given, message in [
        ({"width": 0}, "--width must be at least 1, got 0"),
        ({"lr": 0.0}, "--lr must be positive, got 0.0"),
        ({"batch_size": 2.5}, "--batch-size must be int, got 2.5"),
        ({"hidden": 3}, "--hidden: not an option of the DCGAN family (its options: --width, --lr)"),
    ]:
        with pytest.raises(ValueError) as error:
            resolve_settings("dcgan", given)
        assert str(error.value) == message


def test_option_choices_and_types() -> None:
    option = Option("hinge", "loss", choices=("hinge", "bce"))
    assert option.check("loss", "bce") == "bce"
    with pytest.raises(ValueError, match="--loss must be one of hinge, bce"):
        option.check("loss", "l2")
    with pytest.raises(ValueError, match="--flag must be bool"):
        Option(False, "a switch").check("flag", "yes")


def test_register_family_refuses_a_taken_name_and_bad_definitions() -> None:
    family = Family(name="test-family", step=gan_step, make_optimizers=make_dcgan_optimizers, losses=("loss",))
    try:
        assert register_family(family) is family
        assert register_family(family) is family  # the same object again: fine
        with pytest.raises(ValueError, match="already registered"):
            register_family(Family(name="test-family", step=gan_step, make_optimizers=make_dcgan_optimizers,
                                   losses=("loss",)))
    finally:
        FAMILIES.pop("test-family", None)
    with pytest.raises(ValueError, match="common setting"):
        Family(name="x", step=gan_step, make_optimizers=make_dcgan_optimizers, losses=("loss",),
               options={"batch_size": Option(1, "clash")})
    with pytest.raises(ValueError, match="reserved for the run"):
        Family(name="x", step=gan_step, make_optimizers=make_dcgan_optimizers, losses=("loss",),
               options={"data": Option("a", "clash")})
    with pytest.raises(ValueError, match="letters, digits"):
        Family(name="a b", step=gan_step, make_optimizers=make_dcgan_optimizers, losses=("loss",))
