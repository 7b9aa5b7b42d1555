"""_progress.py - training progress in a terminal (a bar redrawn in place) or in Jupyter (an
updated output cell), and Keras-style callbacks."""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Dict, List, Optional


class Callback:
    """Base class of fit callbacks, as Keras's: override what you need. ``self.net`` is the
    net being trained; setting ``net.stop_training = True`` stops after the current batch.
    logs hold "loss", the metric ("acc" or "rmse"), and at an epoch's end "val_loss" and
    "val_<metric>" when there is validation data."""

    net: Any = None

    def set_net(self, net: Any) -> None:
        self.net = net

    def on_train_begin(self, logs: Optional[Dict[str, float]] = None) -> None: ...
    def on_train_end(self, logs: Optional[Dict[str, float]] = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, float]] = None) -> None: ...
    def on_batch_end(self, batch: int, logs: Optional[Dict[str, float]] = None) -> None: ...


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell)."""
    ip = sys.modules.get("IPython")
    try:
        shell = ip.get_ipython() if ip else None   # type: ignore[attr-defined]
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _time(s: float) -> str:
    if not (s >= 0) or s > 1e7:
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"


def logs_of(p: Any, end: bool) -> Dict[str, float]:
    """The values of a ds_progress as Keras-style logs."""
    logs = {"loss": p.loss}
    name = p.metric_name.decode() if p.metric_name else None
    if name and not math.isnan(p.metric):
        logs[name] = p.metric
    if not math.isnan(p.kl):
        logs["kl"] = p.kl
    if end and not math.isnan(p.val_loss):
        logs["val_loss"] = p.val_loss
        if name and not math.isnan(p.val_metric):
            logs["val_" + name] = p.val_metric
    return logs


class ProgressView:
    """verbose 0: silent; 1: a bar (in place on a terminal, an updated cell in Jupyter);
    2: one line per epoch."""

    def __init__(self, verbose: int, stream: Any = None) -> None:
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.jupyter = verbose == 1 and in_jupyter()
        self.tty = verbose == 1 and not self.jupyter and getattr(self.stream, "isatty",
                                                                lambda: False)()
        self.last = 0.0
        self.done: List[str] = []
        self.handle = None

    def line(self, p: Any, logs: Dict[str, float]) -> str:
        end = bool(p.end_of_epoch)
        vals = "  ".join(f"{k} {v:.4g}" for k, v in logs.items())
        head = f"epoch {p.epoch}/{p.epochs}"
        if self.verbose == 1:
            width = 24
            k = int(width * p.batch / max(p.batches, 1))
            bar = "".join("=" if i < k else (">" if i == k else " ") for i in range(width))
            head += f" [{bar}] {p.batch}/{p.batches}"
        tail = f"elapsed {_time(p.elapsed_s)}" if end else f"ETA {_time(p.eta_s)}"
        return f"{head}  {vals}  {p.samples_per_s:.0f} samples/s  {tail}" + \
            ("  *" if end and p.improved else "")

    def update(self, p: Any, logs: Dict[str, float]) -> None:
        if not self.verbose:
            return
        end = bool(p.end_of_epoch)
        now = time.monotonic()
        if self.verbose == 2 or not (self.tty or self.jupyter):
            if end:
                print(self.line(p, logs), file=self.stream, flush=True)
            return
        if not end and now - self.last < 0.1 and p.batch != 1:
            return
        self.last = now
        text = self.line(p, logs)
        if self.jupyter:
            self._jupyter(text, end)
        else:
            self.stream.write("\r\033[K" + text + ("\n" if end else ""))
            self.stream.flush()

    def _jupyter(self, text: str, end: bool) -> None:
        from IPython.display import display   # only inside Jupyter
        lines = self.done + [text]
        obj = {"text/plain": "\n".join(lines)}
        if self.handle is None:
            self.handle = display(obj, raw=True, display_id=True)
        else:
            self.handle.update(obj, raw=True)
        if end:
            self.done.append(text)
