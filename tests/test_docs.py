"""The docstring examples are executed, so the documentation cannot drift."""

import doctest

import pytest

from jcnn import (
    activations,
    adaptive_pooling,
    conv_arrangements,
    conv_plan,
    convolution,
    linear,
    losses,
    nn,
    padding,
    pooling,
    unpooling,
)


@pytest.mark.parametrize("module", [activations, adaptive_pooling, conv_arrangements, conv_plan,
                                    convolution, linear, losses, nn, padding, pooling,
                                    unpooling])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
