"""jcnn: the mathematics of convolutional neural networks, in JAX, from first principles.

The math of Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural
Networks" (https://towardsdatascience.com/gentle-dive-into-math-behind-convolutional-neural-networks-79a07dd44cf9),
as pure jit-compatible functions with hand-written backward passes.
Channels-last everywhere: inputs ``(N, *spatial, C)``, kernels
``(*window, C_in // groups, C_out)``.

The operations (``jcnn.conv``, ``jcnn.max_pool`` …) and the modules they are
built from load with ``import jcnn``; the user-facing submodules that need
more — ``nn``, ``training``, ``data``, ``checkpoint``, ``viz`` — load on first
access (``jcnn.training.fit``).
"""

import importlib as _importlib

from .activations import leaky_relu as leaky_relu
from .activations import log_softmax as log_softmax
from .activations import relu as relu
from .activations import sigmoid as sigmoid
from .activations import softmax as softmax
from .activations import tanh as tanh
from .adaptive_pooling import adaptive_avg_pool as adaptive_avg_pool
from .adaptive_pooling import adaptive_max_pool as adaptive_max_pool
from .convolution import ConvPlan as ConvPlan
from .convolution import conv as conv
from .convolution import conv1d as conv1d
from .convolution import conv2d as conv2d
from .convolution import conv3d as conv3d
from .convolution import convolve2d as convolve2d
from .convolution import rot180 as rot180
from .elementwise_losses import binary_cross_entropy_with_logits as binary_cross_entropy_with_logits
from .elementwise_losses import huber_loss as huber_loss
from .elementwise_losses import mean_squared_error as mean_squared_error
from .feature_norm import group_norm as group_norm
from .feature_norm import instance_norm as instance_norm
from .feature_norm import layer_norm as layer_norm
from .linear import dense as dense
from .linear import flatten as flatten
from .losses import focal_loss as focal_loss
from .losses import softmax_cross_entropy as softmax_cross_entropy
from .normalization import batch_norm as batch_norm
from .normalization import batch_norm_inference as batch_norm_inference
from .padding import PADDING_MODES as PADDING_MODES
from .padding import border_pad as border_pad
from .padding import output_size as output_size
from .padding import padding_pairs as padding_pairs
from .padding import same_padding as same_padding
from .pooling import avg_pool as avg_pool
from .pooling import avg_pool1d as avg_pool1d
from .pooling import avg_pool2d as avg_pool2d
from .pooling import avg_pool3d as avg_pool3d
from .pooling import global_avg_pool as global_avg_pool
from .pooling import global_avg_pool1d as global_avg_pool1d
from .pooling import global_avg_pool2d as global_avg_pool2d
from .pooling import global_avg_pool3d as global_avg_pool3d
from .pooling import global_max_pool as global_max_pool
from .pooling import global_max_pool1d as global_max_pool1d
from .pooling import global_max_pool2d as global_max_pool2d
from .pooling import global_max_pool3d as global_max_pool3d
from .pooling import max_pool as max_pool
from .pooling import max_pool1d as max_pool1d
from .pooling import max_pool2d as max_pool2d
from .pooling import max_pool3d as max_pool3d
from .smooth_activations import elu as elu
from .smooth_activations import gelu as gelu
from .smooth_activations import hard_swish as hard_swish
from .smooth_activations import silu as silu
from .smooth_activations import softplus as softplus
from .transposed_conv import conv_transpose as conv_transpose
from .unpooling import max_pool_with_indices as max_pool_with_indices
from .unpooling import max_unpool as max_unpool
from .upsampling import upsample as upsample

__version__ = "0.1.0"

__all__ = [
    "adaptive_avg_pool",
    "adaptive_max_pool",
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "batch_norm",
    "batch_norm_inference",
    "binary_cross_entropy_with_logits",
    "border_pad",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose",
    "convolve2d",
    "ConvPlan",
    "dense",
    "elu",
    "flatten",
    "focal_loss",
    "gelu",
    "global_avg_pool",
    "global_avg_pool1d",
    "global_avg_pool2d",
    "global_avg_pool3d",
    "global_max_pool",
    "global_max_pool1d",
    "global_max_pool2d",
    "global_max_pool3d",
    "group_norm",
    "hard_swish",
    "huber_loss",
    "instance_norm",
    "layer_norm",
    "leaky_relu",
    "log_softmax",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool_with_indices",
    "max_unpool",
    "mean_squared_error",
    "nn",
    "output_size",
    "PADDING_MODES",
    "padding_pairs",
    "relu",
    "rot180",
    "same_padding",
    "sigmoid",
    "silu",
    "softmax",
    "softmax_cross_entropy",
    "softplus",
    "tanh",
    "upsample",
]

_SUBMODULES = ("activations", "adaptive_pooling", "augment", "checkpoint", "combinators",
               "conv_arrangements", "conv_backward", "conv_forward", "conv_geometry",
               "conv_mosaic", "conv_pallas", "conv_pallas_depthwise", "conv_pallas_dgrad",
               "conv_pallas_wgrad", "conv_phases", "conv_plan", "conv_policy_table", "convolution",
               "data", "elementwise_losses", "feature_norm", "layer", "linear", "losses", "nn",
               "normalization", "padding", "pooling", "smooth_activations", "summary",
               "torch_weights", "training", "transposed_conv", "unpooling", "upsampling", "viz",
               "window")


def __getattr__(name):
    """Load a submodule on first access (``jcnn.training``, ``jcnn.viz`` …)."""
    if name in _SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'jcnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
