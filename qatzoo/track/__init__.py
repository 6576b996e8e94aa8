"""Experiment tracking behind one small interface: ``log(phase, epoch, metrics)``, ``summary(metrics)``,
``finish()``. Options of the ``logger`` config group; W&B joins them as another option."""

from __future__ import annotations

import csv
from pathlib import Path


class Logger:
    """The interface, and the option that records nothing (``logger=none``)."""

    #: Where the run can be seen online (a W&B run URL), or None.
    url: str | None = None

    def log(self, phase: str, epoch: int, metrics: dict[str, float]) -> None:
        """Per-epoch metrics of one training phase (``float`` or ``qat``)."""

    def summary(self, report) -> None:
        """The run's final :class:`~qatzoo.report.RunReport` (what metrics.json holds)."""

    def finish(self) -> None:
        """Flush and close."""


def none(run_dir: str | None = None, run_config: dict | None = None, tags=()) -> Logger:
    return Logger()


class CsvLogger(Logger):
    """Appends one row per epoch to ``<run dir>/history.csv``."""

    def __init__(self, run_dir: str, run_config: dict | None = None, tags=()):
        self.path = Path(run_dir) / "history.csv"
        self._fields: list[str] | None = None

    def log(self, phase, epoch, metrics):
        row = {"phase": phase, "epoch": epoch, **{k: float(v) for k, v in metrics.items()}}
        if self._fields is None:
            self._fields = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields, extrasaction="ignore")
            if f.tell() == 0:
                writer.writeheader()
            writer.writerow(row)


class Tee(Logger):
    """Several loggers as one: each call goes to every one of them (the run's history.csv beside W&B)."""

    def __init__(self, *loggers: Logger):
        self.loggers = loggers
        self.url = next((log.url for log in loggers if log.url), None)

    def log(self, phase, epoch, metrics):
        for log in self.loggers:
            log.log(phase, epoch, metrics)

    def summary(self, report):
        for log in self.loggers:
            log.summary(report)

    def finish(self):
        for log in self.loggers:
            log.finish()
