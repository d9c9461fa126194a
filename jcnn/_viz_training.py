"""Pictures of training: loss and accuracy curves, the confusion matrix.
Re-exported by :mod:`jcnn.viz`."""

from __future__ import annotations

import numpy as np

from . import _viz_style as style

__all__ = ["confusion_matrix", "plot_confusion_matrix", "plot_training_curves"]


def plot_training_curves(history, path) -> dict:
    """One panel per quantity, train and test per epoch: the loss, then every metric.

    ``history`` is ``fit``'s :class:`History` or a dict of lists with the same
    names: ``train_loss`` and, when present, ``test_loss``, ``train_<metric>``,
    ``test_<metric>`` (``accuracy`` for a classifier, ``mae`` … for a regression).
    Returns the epoch count and the panels drawn.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn import viz
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> h = {'train_loss': [1.0, 0.5], 'test_loss': [1.1, 0.6],
      ...      'train_accuracy': [0.5, 0.8], 'test_accuracy': [0.4, 0.7]}
      >>> viz.plot_training_curves(h, out / 't.png')
      {'epochs': 2, 'panels': ['loss', 'accuracy']}
      >>> viz.plot_training_curves({'train_loss': [0.3, 0.2, 0.1]}, out / 'r.png')
      {'epochs': 3, 'panels': ['loss']}
    """
    from matplotlib.ticker import MaxNLocator

    h = history if isinstance(history, dict) else history.as_dict()
    if "train_loss" not in h:
        raise ValueError(f"plot_training_curves: the history has no 'train_loss'; it has "
                         f"{sorted(h)}")
    epochs = np.arange(1, len(h["train_loss"]) + 1)
    panels = ["loss"] + [k[len("train_"):] for k in h
                         if k.startswith("train_") and k != "train_loss"]
    panels += [k[len("test_"):] for k in h if k.startswith("test_")
               and k[len("test_"):] not in panels]
    fig, axes = style.figure(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, name in zip(axes[0], panels):
        for split in ("train", "test"):
            if f"{split}_{name}" in h:
                ax.plot(epochs, h[f"{split}_{name}"], "o-", label=split)
        ax.set(xlabel="epoch", ylabel=name, title=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    style.save(fig, path)
    return {"epochs": len(epochs), "panels": panels}


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """``cm[i, j]``: how many examples of class ``i`` were predicted as ``j``.

    Examples:
      >>> from jcnn import viz
      >>> viz.confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3).tolist()
      [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"confusion_matrix: labels {labels.shape} and predictions "
                         f"{predictions.shape} must be equal-length vectors")
    for name, v in (("labels", labels), ("predictions", predictions)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} must lie in [0, {num_classes})")
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def plot_confusion_matrix(cm: np.ndarray, path, class_names=None) -> dict:
    """The confusion matrix as a heat map, rows normalised to recall, counts written
    in; the diagonal is each class's recall.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn import viz
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> viz.plot_confusion_matrix(np.array([[8, 2], [1, 9]]), out / 'cm.png', ['a', 'b'])
      {'accuracy': 0.85, 'worst_class': 'a'}
    """
    cm = np.asarray(cm)
    k = len(cm)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    recall = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = style.figure(figsize=(1.4 + 0.6 * k, 1.2 + 0.6 * k))
    im = ax.imshow(recall, cmap="Blues", vmin=0, vmax=1)
    style.annotate(ax, im, recall, [[str(v) for v in row] for row in cm], fontsize=7)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set(xlabel="predicted", ylabel="true", title="test set (row = true class)")
    style.save(fig, path)
    worst = int(np.argmin(np.diag(recall)))
    return {"accuracy": float(np.trace(cm) / max(cm.sum(), 1)), "worst_class": names[worst]}
