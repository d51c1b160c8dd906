"""How a training run reports its progress: DVCLive (``dvclive/``: the logged configuration,
``train/*``, ``rdd/*`` and ``val/*`` scalars), and a tqdm bar on a terminal or ``train.log`` lines.

:class:`RunProgress` is a mixin of :class:`rdd.engine.trainer.Trainer` (it reads the trainer's
``cfg``, ``step``, ``info``, ``is_main``, ``out_dir``, ``ignore_index``, ``resumed_from`` and
``global_batch_size``). Scalars are averaged over the global batch of all ranks, so every rank
calls :meth:`~RunProgress._log_train`; only rank 0 writes.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from rdd.spec import write_text_atomic

from . import distributed as D
from .objective import global_rdd_stats

__all__ = ["RunProgress"]

log = logging.getLogger("rdd.engine")


class RunProgress:
    """DVCLive, progress bar and log lines of a :class:`~rdd.engine.trainer.Trainer`."""

    def _open_live(self):
        """Rank 0's DVCLive logger (continued on resume, without the rows logged after the
        resumed step: :func:`_drop_rows_after`), with the run's configuration logged
        as ``params.yaml`` (what :func:`rdd.study.read_run_config` reads); ``None`` elsewhere."""
        if not self.is_main:
            return None
        from dvclive import Live

        live_dir = self.out_dir / "dvclive"
        resume = self.resumed_from is not None and (live_dir / "metrics.json").exists()
        if resume:
            _drop_rows_after(live_dir, self.step)
        live = Live(dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)
        live.log_params(
            {
                "config": self.cfg.to_dict(),
                "world_size": self.info.world_size,
                "global_batch_size": self.global_batch_size,
            }
        )
        return live

    def _log_train(self, live, bar, terms, loss, maps, y, lr, phase, elapsed, n_done) -> dict[str, float]:
        """Log iteration ``self.step``: loss terms averaged over ranks and the RDD map statistics
        (:func:`~rdd.engine.objective.global_rdd_stats`); returns the averaged scalars."""
        names = ["loss"] + list(terms)
        vals = torch.stack([loss.detach().float()] + [v.detach().float() for v in terms.values()])
        vals = D.all_reduce_mean(vals)
        scalars = dict(zip(names, vals.tolist()))
        stats = global_rdd_stats(maps, y, self.ignore_index)
        if not self.is_main:
            return scalars
        sec_it = elapsed / max(n_done, 1)
        if live is not None:
            live.step = self.step
            for k, v in scalars.items():
                live.log_metric(f"train/{k}", v)
            live.log_metric("train/lr", lr)
            for k, v in stats.items():
                live.log_metric(f"rdd/{k}", v)
        if bar is not None:
            bar.set_postfix(loss=f"{scalars['loss']:.4f}", lr=f"{lr:.2e}", phase=phase)
        else:
            eta = sec_it * (self.cfg.end_iter - self.step)
            extra = " ".join(f"{k}={v:.4f}" for k, v in {**scalars, **stats}.items())
            log.info(
                "iter %d/%d [%s] %s lr=%.3e %.3fs/it eta %s",
                self.step,
                self.cfg.end_iter,
                phase,
                extra,
                lr,
                sec_it,
                _fmt_time(eta),
            )
        return scalars

    def _log_val(self, live, val: dict[str, Any]) -> None:
        """Log a validation result (rank 0)."""
        if not self.is_main:
            return
        log.info(
            "iter %d val mIoU %.2f%% pixel acc %.2f%%", self.step, 100 * val["miou"], 100 * val["pixel_acc"]
        )
        if live is not None:
            live.step = self.step
            for k in ("miou", "pixel_acc", "mean_acc"):
                if not math.isnan(val[k]):
                    live.log_metric(f"val/{k}", val[k])
            live.make_summary()


def _drop_rows_after(live_dir: Path, step: int) -> None:
    """Remove the rows of steps after ``step`` from the DVCLive curves (``plots/metrics/**.tsv``).

    A run stopped after its last checkpoint has logged steps that the resumed run, starting at
    that checkpoint's ``step``, logs again; without this they would be in the curves twice."""
    for tsv in sorted((live_dir / "plots" / "metrics").rglob("*.tsv")):
        lines = tsv.read_text().splitlines(keepends=True)
        header = lines[0].rstrip("\r\n").split("\t") if lines else []
        if "step" not in header:
            continue
        col = header.index("step")
        keep = lines[:1] + [row for row in lines[1:] if not _after(row, col, step)]
        if len(keep) < len(lines):
            write_text_atomic(tsv, "".join(keep))


def _after(row: str, col: int, step: int) -> bool:
    cells = row.rstrip("\r\n").split("\t")
    try:
        return int(float(cells[col])) > step
    except (IndexError, ValueError):
        return False


def _fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
