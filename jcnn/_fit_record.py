"""What ``fit`` keeps and shows: the per-epoch :class:`History`, the progress
(a tqdm bar, else one line per epoch) and the checkpoint of each epoch.

Under ``jax.distributed`` only process 0 shows progress and writes checkpoints;
every process reads a checkpoint on resume.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax

from . import checkpoint

__all__ = ["History"]


class History:
    """Per-epoch values of a ``fit`` run, one list per column: ``train_loss``,
    ``test_loss``, ``train_<metric>`` / ``test_<metric>`` (``train_accuracy`` …)
    and ``seconds`` (training time of the epoch).  Read a column as an attribute
    (``history.test_accuracy``) or by name (``history["test_mae"]``); columns
    without a test split are absent.
    """

    def __init__(self, columns: dict | None = None):
        self._columns = {k: list(v) for k, v in (columns or {}).items()}

    def append(self, **values) -> None:
        for name, value in values.items():
            self._columns.setdefault(name, []).append(value)

    def __getitem__(self, name):
        if name not in self._columns:
            raise KeyError(f"History has no column {name!r}; it has {sorted(self._columns)}")
        return self._columns[name]

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(e.args[0]) from None

    def __contains__(self, name) -> bool:
        return name in self._columns

    def __len__(self) -> int:
        return len(self._columns.get("seconds", []))

    def __repr__(self) -> str:
        return f"History({self._columns!r})"

    def as_dict(self) -> dict:
        return {k: list(v) for k, v in self._columns.items()}


class Progress:
    """A tqdm bar when tqdm is installed and ``show``, else one printed line per
    epoch; silent on every process but the first."""

    def __init__(self, show: bool, steps: int, epochs: int):
        self.show = show and jax.process_index() == 0
        self.epochs, self.bar = epochs, None
        if self.show and steps:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                print("fit: tqdm is not installed; printing one line per epoch instead of a bar",
                      file=sys.stderr)
            else:
                self.bar = tqdm(total=steps, unit="step", leave=True)

    def steps(self, n: int, epoch: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}")

    def epoch(self, epoch: int, history: History) -> None:
        if not self.show:
            return
        shown = {k: v[-1] for k, v in history.as_dict().items() if k != "seconds" and v}
        if self.bar is not None:
            self.bar.set_postfix(epoch=epoch + 1, **{k: f"{v:.4f}" for k, v in shown.items()})
            return
        text = ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in shown.items())
        print(f"epoch {epoch + 1}/{self.epochs}: {text} ({history.seconds[-1]:.1f} s)",
              flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_NAMES = ("params", "state", "opt_state")


class Checkpoints:
    """``out_dir/checkpoint.npz``: ``{"params", "state", "opt_state"}`` and, as
    metadata, the epoch, the history and the run's settings."""

    def __init__(self, out_dir):
        self.path = Path(out_dir) / "checkpoint.npz" if out_dir is not None else None

    def restore(self, trees: tuple):
        """``(trees, history, epoch)`` from the checkpoint; ``trees`` (params, state,
        optimizer state) as a template."""
        if self.path is None or not self.path.is_file():
            raise FileNotFoundError(f"fit: resume=True needs a checkpoint, none at {self.path}")
        named, meta = checkpoint.restore(self.path, dict(zip(_NAMES, trees)))
        return tuple(named[k] for k in _NAMES), History(meta["history"]), int(meta["epoch"])

    def save(self, trees: tuple, epoch: int, history: History, settings: dict) -> None:
        if self.path is None or jax.process_index() != 0:
            return
        checkpoint.save(self.path, dict(zip(_NAMES, trees)),
                        metadata={"epoch": epoch, "history": history.as_dict(), **settings})
