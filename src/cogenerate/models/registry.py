"""A registry of model architectures, so modules can be rebuilt from a JSON config.

A checkpoint stores, for each module, the registered architecture name and the keyword
arguments of its constructor (see :func:`module_config`); :func:`build_module` rebuilds an
untrained module of the same shape from them. Register a class with::

    @register_architecture("toy-generator")
    class ToyGenerator(nn.Module):
        def __init__(self, latent_dim: int = 2, *, hidden: int = 128, depth: int = 3): ...

The constructor contract: every named argument of ``__init__`` (no ``*args``/``**kwargs``)
must be stored on the instance as an attribute of the same name, with a JSON-serialisable
value (numbers, strings, booleans, None, lists, dicts).

This module imports nothing from ``training``; models import it, never the other way round.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

__all__ = ["ARCHITECTURES", "register_architecture", "build_module", "module_config"]

ARCHITECTURES: dict[str, type[nn.Module]] = {}
"""Registered architecture name -> ``nn.Module`` subclass."""

# Modules of this package that register architectures when imported. build_module imports
# them on a lookup miss, so a checkpoint can be loaded without importing the model first.
_BUILTIN_MODEL_MODULES = ("cogenerate.models.toy", "cogenerate.models.dcgan", "cogenerate.models.ebgan", "cogenerate.models.began",
                         "cogenerate.models.vae", "cogenerate.models.aae", "cogenerate.models.triangle")

ModuleType = TypeVar("ModuleType", bound=type[nn.Module])


def register_architecture(name: str) -> Callable[[ModuleType], ModuleType]:
    """Class decorator registering an ``nn.Module`` subclass under ``name``.

    Raises:
        ValueError: if ``name`` is already taken by a different class.
        TypeError: if the decorated object is not an ``nn.Module`` subclass or its
            constructor takes ``*args``/``**kwargs`` (the config could not be recovered).
    """

    def decorate(cls: ModuleType) -> ModuleType:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register_architecture({name!r}) expects an nn.Module subclass, got {cls!r}")
        existing = ARCHITECTURES.get(name)
        if existing is not None and _qualified_name(existing) != _qualified_name(cls):
            raise ValueError(
                f"architecture name {name!r} is already registered to {_qualified_name(existing)}"
            )
        _constructor_parameters(cls)  # fail early on *args / **kwargs
        ARCHITECTURES[name] = cls
        return cls

    return decorate


def build_module(name: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Instantiate the architecture registered as ``name`` with constructor ``kwargs``.

    The parameters get the class's default initialisation, which (as for any ``nn.Module``
    constructor) draws from the global RNG; wrap the call in ``torch.random.fork_rng`` or
    build under ``torch.device("meta")`` to avoid that. Load a state dict to restore
    trained weights.

    Raises:
        ValueError: unknown architecture name, or ``kwargs`` the constructor does not accept.
    """
    cls = _lookup(name)
    kwargs = dict(kwargs or {})
    accepted = {p.name for p in _constructor_parameters(cls)}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"architecture {name!r} ({_qualified_name(cls)}) does not accept argument(s) {unknown}; "
            f"it accepts {sorted(accepted)}"
        )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot build architecture {name!r} with {kwargs}: {error}") from error


def module_config(module: nn.Module) -> dict[str, Any]:
    """The JSON-serialisable description of ``module`` that :func:`build_module` inverts.

    Returns:
        ``{"architecture": <registered name>, "kwargs": {<constructor argument>: <value>}}``,
        the values read from the instance attributes of the same names (tuples become lists).

    Raises:
        ValueError: if the module's class is not registered, or an argument is not stored
            as an attribute.
    """
    cls = type(module)
    names = [name for name, registered in ARCHITECTURES.items() if registered is cls]
    if not names:
        raise ValueError(
            f"{_qualified_name(cls)} is not a registered architecture; decorate it with "
            f"@register_architecture(name) from cogenerate.models.registry"
        )
    kwargs: dict[str, Any] = {}
    for parameter in _constructor_parameters(cls):
        if not hasattr(module, parameter.name):
            raise ValueError(
                f"{_qualified_name(cls)} does not store its constructor argument "
                f"{parameter.name!r} as an attribute, so it cannot be rebuilt from a config"
            )
        kwargs[parameter.name] = _to_json_value(getattr(module, parameter.name))
    return {"architecture": names[0], "kwargs": kwargs}


def _lookup(name: str) -> type[nn.Module]:
    if name not in ARCHITECTURES:
        for module_name in _BUILTIN_MODEL_MODULES:
            try:
                importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name != module_name:  # a real missing dependency, not an absent file
                    raise
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; registered: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def _constructor_parameters(cls: type[nn.Module]) -> list[inspect.Parameter]:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # drop self
    for parameter in parameters:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(
                f"{_qualified_name(cls)}.__init__ takes *{parameter.name}; registered architectures "
                f"need named constructor arguments only"
            )
    return parameters


def _to_json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json_value(item) for item in value]
    if isinstance(value, list):
        return [_to_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _to_json_value(item) for key, item in value.items()}
    return value


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
