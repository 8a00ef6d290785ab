"""Model families (architecture only, one file each) and the one type every trained model
loads into, :class:`GenerativeModel`. :func:`load_model` / :func:`save_model` (from
:mod:`cogenerate.models.loading`) are imported on first use, so importing this package stays
light and does not import the checkpoint module.
"""

from __future__ import annotations

from typing import Any

from cogenerate.models.base import ROLES, GenerativeModel, prior_config, prior_from_config, standard_normal

__all__ = ["GenerativeModel", "ROLES", "load_model", "prior_config", "prior_from_config", "save_model",
           "standard_normal"]


def __getattr__(name: str) -> Any:
    if name in ("load_model", "save_model"):
        from cogenerate.models import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
