"""The docstring examples are executed, so the documentation cannot drift."""

import doctest

import pytest

from jcnn import (
    activations,
    adaptive_pooling,
    augment,
    checkpoint,
    combinators,
    conv_arrangements,
    conv_pallas,
    conv_pallas_depthwise,
    conv_pallas_wgrad,
    conv_phases,
    conv_plan,
    convolution,
    data,
    layer,
    linear,
    losses,
    nn,
    normalization,
    padding,
    pooling,
    summary,
    training,
    unpooling,
    viz,
    window,
)


@pytest.mark.parametrize("module", [activations, adaptive_pooling, augment, checkpoint, combinators,
                                    conv_arrangements, conv_pallas, conv_pallas_depthwise,
                                    conv_pallas_wgrad, conv_phases, conv_plan, convolution,
                                    data, layer,
                                    linear, losses, nn, normalization, padding, pooling, summary,
                                    training, unpooling, viz, window])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_tutorial_code_runs_in_order():
    """docs/tutorial.md's code blocks, executed as one program (their asserts hold)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "tutorial.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 12  # the imports and one per section, §1–§11
    env = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"tutorial block {i}", "exec"), env)  # noqa: S102
        except Exception as e:  # name the block that broke
            raise AssertionError(f"tutorial block {i} failed:\n{block}") from e
