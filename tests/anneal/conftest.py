import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "compiled: runs torch.compile (tens of seconds per graph); deselect with -m 'not compiled'"
    )
