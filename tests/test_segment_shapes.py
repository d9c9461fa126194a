"""examples/segment_shapes.py: the shape generator's masks, the U-Net's plumbing, and a few
training steps end to end."""

import json

import numpy as np
import pytest
import segment_shapes as seg

from jcnn import nn


@pytest.mark.parametrize("kind", [1, 2, 3])
def test_shape_masks_have_the_analytic_area_and_reach(kind):
    size, r, a, b, angle = 64, 20.0, 14.0, 9.0, 0.4
    inside = seg.shape_mask(kind, (32.0, 30.0, r, a, b, angle), size)
    area = {1: np.pi * r ** 2, 2: 4 * a * b, 3: 3 * np.sqrt(3) / 4 * r ** 2}[kind]
    assert inside.sum() == pytest.approx(area, rel=0.04)  # pixel centres: edge error only
    y, x = np.nonzero(inside)
    reach = np.hypot(x + 0.5 - 32.0, y + 0.5 - 30.0).max()
    assert reach == pytest.approx({1: r, 2: np.hypot(a, b), 3: r}[kind], abs=1.0)
    centroid = (x.mean() + 0.5, y.mean() + 0.5)  # all three are centrally symmetric or regular
    np.testing.assert_allclose(centroid, (32.0, 30.0), atol=0.5)


def test_generator_masks_agree_with_its_shapes():
    images, masks, shapes = seg.make_shapes(40, 32, seed=1, noise=0.02, return_shapes=True)
    assert images.shape == (40, 32, 32, 3) and masks.shape == (40, 32, 32)
    assert images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
    kinds = set()
    for image, mask, drawn in zip(images, masks, shapes):
        assert 1 <= len(drawn) <= 3
        insides = [seg.shape_mask(kind, params, 32) for kind, params, _ in drawn]
        shown = np.zeros((32, 32), bool)
        for (kind, _, colour), inside in reversed(list(zip(drawn, insides))):  # top first
            top = inside & ~shown  # where this shape is the topmost one
            shown |= inside
            kinds.add(kind)
            # later shapes cover at most a third of what is left of it each: (2/3)² shows
            assert top.sum() >= inside.sum() * 4 / 9
            assert np.all(mask[top] == kind)
            assert np.abs(image[top] - colour).mean() < 0.03  # its colour, plus noise
        assert np.all(mask[~shown] == 0)
        background = image[~shown]
        if len(background):
            assert np.abs(background - np.median(background, axis=0)).mean() < 0.03
    assert kinds == {1, 2, 3}


def test_skip_concat_and_unet_shapes():
    model = seg.unet((4, 8, 16), classes=4, groups=2)
    assert nn.output_shape(model, (-1, 16, 16, 3)) == (-1, 16, 16, 4)
    layer = seg.skip_concat(nn.Conv(5, (3, 3), padding="SAME"))
    assert nn.output_shape(layer, (-1, 6, 6, 2)) == (-1, 6, 6, 7)
    with pytest.raises(ValueError, match=r"skip_concat: the inner layers map \(-1, 6, 6, 2\) "
                                         r"to \(-1, 3, 3, 2\)"):
        seg.skip_concat(nn.MaxPool((2, 2))).init(None, (-1, 6, 6, 2))


def test_example_trains_and_writes_metrics_and_picture(tmp_path):
    metrics_path, picture = tmp_path / "metrics.json", tmp_path / "seg.png"
    seg.main(["--size", "16", "--widths", "4,8", "--groups", "2", "--steps", "40",
              "--batch-size", "8", "--train-size", "64", "--test-size", "16", "--lr", "1e-2",
              "--metrics-json", str(metrics_path), "--out", str(picture)])
    metrics = json.loads(metrics_path.read_text())
    assert 0.0 <= metrics["mean_iou"] <= 1.0 and metrics["train_seconds"] > 0
    assert metrics["steps"] == 40 and set(metrics["iou"]) == set(seg.CLASSES)
    losses = [loss for _, loss in metrics["history"]]
    assert losses[-1] < 0.8 * losses[0], losses
    assert picture.stat().st_size > 5000
