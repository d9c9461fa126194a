"""The docstring examples are executed, so the documentation cannot drift."""

import doctest

import pytest

from jcnn import conv_plan, convolution, padding, pooling


@pytest.mark.parametrize("module", [padding, convolution, conv_plan, pooling])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
