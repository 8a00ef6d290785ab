"""The README's Python example runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.fashion_mnist
def test_readme_python_example_runs():
    block = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    out = namespace["out"]
    assert out.completions.shape == (4, 16, 1, 28, 28)
    assert out.grad_evals <= 300
