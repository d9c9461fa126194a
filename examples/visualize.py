"""Draw the article's pictures with jcnn's own functions: ``--out DIR`` gets nine PNGs.

    python examples/visualize.py --out docs/pictures
    python examples/visualize.py --out pics --checkpoint runs/digits/checkpoint.npz

Photos come from scikit-learn's bundled sample images, digits from its bundled
digits; with no ``--checkpoint`` a small digits model is trained on the fly
(a few seconds) for the filter and training-curve pictures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from train_digits import INPUT_SHAPE, digits_model

from jcnn import checkpoint, viz
from jcnn.data import load_digits
from jcnn.training import fit


def sample_photo(size: int = 96) -> np.ndarray:
    """scikit-learn's bundled 'china.jpg', centre-cropped and downsampled (uint8 RGB)."""
    from sklearn.datasets import load_sample_image

    img = load_sample_image("china.jpg")
    h, w, _ = img.shape
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    step = s // size
    return img[::step, ::step][:size, :size].copy()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="directory for the PNGs")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a train_digits.py checkpoint (default: train a small model now)")
    p.add_argument("--epochs", type=int, default=4, help="epochs of the on-the-fly model")
    args = p.parse_args(argv)
    out = args.out
    photo = sample_photo()
    gray = photo.mean(-1)
    x_tr, y_tr, x_te, y_te = load_digits(seed=0)
    digit = x_tr[0, :, :, 0] * 16
    written = {}
    written["1_image_as_tensor.png"] = viz.plot_image_as_tensor(
        photo, digit, out / "1_image_as_tensor.png")
    written["2_kernels.png"] = viz.plot_kernel_gallery(gray, out / "2_kernels.png")
    written["3_valid_vs_same.png"] = viz.plot_pixel_usage(6, 3, out / "3_valid_vs_same.png")
    written["4_strides.png"] = viz.plot_strides(gray, out / "4_strides.png")
    written["5_volumes.png"] = viz.plot_volumes(photo, out / "5_volumes.png")
    model = digits_model()
    if args.checkpoint is not None:
        params, _ = checkpoint.load_params(args.checkpoint)  # weights, no optimizer
        history = checkpoint.read_metadata(args.checkpoint).get("history")
    else:
        result = fit(model, (x_tr, y_tr, x_te, y_te), input_shape=INPUT_SHAPE,
                     epochs=args.epochs, batch_size=64, lr=2e-3, progress=False)
        params, history = result.params, result.history
    written["6_filters_and_maps.png"] = viz.plot_filters_and_maps(
        params[0]["w"], x_te[0, :, :, 0], out / "6_filters_and_maps.png", b=params[0]["b"])
    written["7_backprop.png"] = viz.plot_backprop(out / "7_backprop.png")
    written["8_sharing.png"] = viz.plot_sharing(out / "8_sharing.png")
    if history:
        written["9_training_curves.png"] = viz.plot_training_curves(
            history, out / "9_training_curves.png")
    for name in written:
        print(out / name)
    return written


if __name__ == "__main__":
    main()
