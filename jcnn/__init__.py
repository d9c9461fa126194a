"""jcnn: the mathematics of convolutional neural networks, in JAX, from first principles.

Channels-last everywhere: inputs ``(N, *spatial, C)``, kernels
``(*window, C_in // groups, C_out)``.
"""

from . import nn as nn
from .activations import leaky_relu as leaky_relu
from .activations import log_softmax as log_softmax
from .activations import relu as relu
from .activations import sigmoid as sigmoid
from .activations import softmax as softmax
from .activations import tanh as tanh
from .convolution import ConvPlan as ConvPlan
from .convolution import conv as conv
from .convolution import conv1d as conv1d
from .convolution import conv2d as conv2d
from .convolution import conv3d as conv3d
from .convolution import conv_transpose as conv_transpose
from .convolution import convolve2d as convolve2d
from .convolution import rot180 as rot180
from .linear import dense as dense
from .linear import flatten as flatten
from .losses import softmax_cross_entropy as softmax_cross_entropy
from .padding import PADDING_MODES as PADDING_MODES
from .padding import border_pad as border_pad
from .padding import output_size as output_size
from .padding import padding_pairs as padding_pairs
from .padding import same_padding as same_padding
from .pooling import adaptive_avg_pool as adaptive_avg_pool
from .pooling import adaptive_max_pool as adaptive_max_pool
from .pooling import avg_pool as avg_pool
from .pooling import global_avg_pool as global_avg_pool
from .pooling import global_max_pool as global_max_pool
from .pooling import max_pool as max_pool
from .pooling import max_unpool as max_unpool

__version__ = "0.1.0"

__all__ = [
    "ConvPlan",
    "PADDING_MODES",
    "adaptive_avg_pool",
    "adaptive_max_pool",
    "avg_pool",
    "border_pad",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose",
    "convolve2d",
    "dense",
    "flatten",
    "global_avg_pool",
    "global_max_pool",
    "leaky_relu",
    "log_softmax",
    "max_pool",
    "max_unpool",
    "nn",
    "output_size",
    "padding_pairs",
    "relu",
    "rot180",
    "same_padding",
    "sigmoid",
    "softmax",
    "softmax_cross_entropy",
    "tanh",
]
