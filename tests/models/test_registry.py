"""The architecture registry used by checkpoints."""

from __future__ import annotations

import pytest
from torch import nn

from cogenerate.models.registry import ARCHITECTURES, build_module, module_config, register_architecture


def test_unknown_architecture_and_bad_kwargs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'no-such-net'"):
        build_module("no-such-net", {})
    with pytest.raises(ValueError, match="does not accept argument"):
        build_module("toy-generator", {"width": 3})


def test_register_module_config_and_errors() -> None:
    name = "test-registry-net"
    try:

        @register_architecture(name)
        class Net(nn.Module):
            def __init__(self, size: int = 3, *, widths: tuple[int, ...] = (4, 5)) -> None:
                super().__init__()
                self.size, self.widths = size, widths
                self.linear = nn.Linear(size, widths[0])

        assert module_config(Net(2, widths=(6,))) == {"architecture": name, "kwargs": {"size": 2, "widths": [6]}}
        assert isinstance(build_module(name, {"size": 2, "widths": [6]}), Net)

        with pytest.raises(ValueError, match="already registered"):

            @register_architecture(name)
            class Other(nn.Module):
                pass

        class Unregistered(nn.Module):
            pass

        with pytest.raises(ValueError, match="not a registered architecture"):
            module_config(Unregistered())

        @register_architecture(name + "-forgetful")
        class Forgetful(nn.Module):
            def __init__(self, size: int = 3) -> None:
                super().__init__()

        with pytest.raises(ValueError, match="does not store its constructor argument 'size'"):
            module_config(Forgetful())

        with pytest.raises(TypeError):

            @register_architecture(name + "-varargs")
            class VarArgs(nn.Module):
                def __init__(self, **kwargs: int) -> None:
                    super().__init__()
    finally:
        for key in [k for k in ARCHITECTURES if k.startswith(name)]:
            del ARCHITECTURES[key]
