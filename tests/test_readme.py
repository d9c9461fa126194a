"""The README's code runs, and shows what it says it shows."""

import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_snippet_runs_and_gives_a_real_gradient(capsys):
    code = re.search(r"## Fifteen lines\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert code, "the README's first snippet is missing"
    env = {}
    exec(code.group(1), env)  # noqa: S102 - the README is this project's own file
    assert capsys.readouterr().out.strip() == "16"
    dw, db = env["dw"], env["db"]
    assert dw.shape == (3, 3, 3, 16) and db.shape == (16,)
    # the gradient is not (numerically) zero: the head's weights are not all equal
    assert float(jnp.abs(dw).max()) > 1e-3, float(jnp.abs(dw).max())
    assert np.isfinite(np.asarray(dw)).all()


def test_readme_names_the_article():
    text = README.read_text()
    assert "Gentle Dive into Math Behind Convolutional Neural Networks" in text
    assert "Skalski" in text
