"""Weights & Biases tracking (``logger=wandb``) that can never fail, hang or slow down a run.

Online when an API key is available, offline otherwise (run files under ``<run dir>/wandb/``, upload
later with ``wandb sync``). An unreachable server, a timeout or any W&B error turns into one warning
line and offline logging (or, failing that, no logging); the run and its local files go on.
"""

from __future__ import annotations

import netrc
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from qatzoo.track import Logger


def _warn(message: str) -> None:
    print(f"[qatzoo] W&B: {message}", flush=True)


def api_key_available() -> bool:
    """An API key in WANDB_API_KEY or in ~/.netrc for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def server_responds(deadline: float) -> str | None:
    """None if the W&B server answers an HTTP request before ``deadline`` (a ``time.monotonic()`` time), else why not.

    Any HTTP answer counts (even a 404): the question is whether the server is alive, not what it says. A TCP
    connection alone proves nothing (a hung server still accepts), so this asks for a reply. The request runs in
    a daemon thread so that no socket timeout, proxy or TLS handshake can keep the caller past ``deadline``.
    """
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/")
    where = urlparse(base).netloc or base
    outcome: list[str | None] = []

    def ask() -> None:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=max(deadline - time.monotonic(), 0.01)):
                outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)  # an error status is still an answer
        except Exception as error:  # noqa: BLE001 - any failure means "not reachable", with its reason
            reason = getattr(error, "reason", error)
            outcome.append(f"{where} unreachable ({getattr(reason, 'strerror', None) or reason})")

    probe = threading.Thread(target=ask, name="qatzoo-wandb-probe", daemon=True)
    probe.start()
    probe.join(max(deadline - time.monotonic(), 0.0))
    if outcome:
        return outcome[0]
    return f"{where} did not answer in time (logger.init_timeout)"


def _no_wandb_telemetry() -> None:
    """Keep W&B's own usage telemetry from waiting on a server that did not answer.

    wandb (0.31) sends its usage telemetry to the same server when the process exits and waits up to 10 s for it
    to answer, even after an offline run: without this, the fallback would still end every run 10+ s late.
    The run's own data is unaffected (it is in the offline run files).
    """
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy

        opentelemetry_proxy.disable()
    except (ImportError, AttributeError):  # another wandb version: nothing to turn off, or no way to
        pass


class WandbLogger(Logger):
    """Logs the resolved config, tags, per-epoch metrics, the final results table and the int8 model."""

    def __init__(
        self,
        run_dir: str,
        run_config: dict | None = None,
        tags: list[str] | tuple[str, ...] = (),
        project: str = "qatzoo",
        entity: str | None = None,
        group: str | None = None,
        mode: str = "auto",
        init_timeout: float = 30.0,
    ):
        # One deadline shared by the probe and the online init: an unresponsive server costs init_timeout once,
        # not once per step.
        deadline = time.monotonic() + init_timeout
        self.run_dir = Path(run_dir)
        self.run = None
        self._step = 0
        try:
            import wandb
        except ImportError:
            _warn("the wandb package is not installed (pip install wandb); tracking is off for this run")
            return
        self._wandb = wandb
        kwargs = dict(
            project=project,
            entity=entity,
            group=group,
            config=run_config or {},
            tags=list(tags),
            name=f"{self.run_dir.parent.name}/{self.run_dir.name}",
            dir=str(self.run_dir),
            reinit="finish_previous",
        )
        wanted = os.environ.get("WANDB_MODE") or mode
        if wanted == "auto":
            wanted = "online" if api_key_available() else "offline"
            if wanted == "offline":
                _warn(
                    f"no API key, logging offline to {self.run_dir / 'wandb'}; upload later with `wandb sync {self.run_dir / 'wandb'}/offline-run-*`"
                )
        if wanted == "online":
            reason = server_responds(deadline)
            if reason is None:
                self.run = self._init("online", max(deadline - time.monotonic(), 0.1), kwargs)
                if self.run is not None:
                    return
            else:
                _warn(f"{reason}; logging offline instead (`wandb sync` uploads it later)")
                _no_wandb_telemetry()
            wanted = "offline"
        if wanted in ("offline", "disabled"):
            # Local work only (no server involved): its own allowance, so a busy machine does not lose the run.
            self.run = self._init(wanted, init_timeout, kwargs)

    def _init(self, mode: str, timeout: float, kwargs: dict):
        try:
            settings = self._wandb.Settings(init_timeout=timeout, silent=True, console="off")
            return self._wandb.init(mode=mode, settings=settings, **kwargs)
        except Exception as error:  # noqa: BLE001 - W&B must never stop a run
            _warn(
                f"{mode} init failed ({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})"
                f"{'; trying offline' if mode == 'online' else '; tracking is off for this run'}"
            )
            return None

    def _safely(self, what: str, fn, disable: bool = True) -> None:
        if self.run is None:
            return
        try:
            fn()
        except Exception as error:  # noqa: BLE001 - W&B must never stop a run
            rest = "; tracking is off for the rest of this run" if disable else ""
            _warn(f"{what} failed ({type(error).__name__}: {str(error)[:200]}){rest}")
            if disable:
                self.run = None

    @property
    def url(self) -> str | None:
        try:
            return self.run.url if self.run is not None and self.run.settings.mode == "online" else None
        except Exception:  # noqa: BLE001
            return None

    def log(self, phase, epoch, metrics):
        self._step += 1
        values = {f"{phase}/{key}": float(value) for key, value in metrics.items()}
        self._safely("log", lambda: self.run.log({**values, f"{phase}/epoch": epoch}, step=self._step))

    def summary(self, report):
        # Each part on its own, most important first: one failing part does not lose the others.
        wandb, metric = self._wandb if self.run is not None else None, report.metric
        self._safely(
            "summary",
            lambda: self.run.summary.update(
                {f"test/{name}_{metric}": report.value(name) for name in report.results}
                | {f"agreement/{pair}": value for pair, value in report.agreement.items()}
                | {f"size/{key}": value for key, value in report.sizes.items()}
            ),
            disable=False,
        )
        rows = [[name, report.value(name)] for name in report.results]
        self._safely(
            "results table",
            lambda: self.run.log({"results": wandb.Table(columns=["model", metric], data=rows)}, step=self._step + 1),
            disable=False,
        )
        self._safely(
            "config",
            lambda: self.run.config.update({"provenance": report.provenance}, allow_val_change=True),
            disable=False,
        )
        model = self.run_dir / "model_int8.tflite"
        if model.exists():

            def artifact():
                art = wandb.Artifact(f"{report.name}-int8", type="model", metadata=report.to_dict())
                art.add_file(str(model))
                art.add_file(str(self.run_dir / "card.md"))
                self.run.log_artifact(art, aliases=["latest"])

            self._safely("model artifact", artifact, disable=False)

    def finish(self):
        self._safely("finish", lambda: self.run.finish())
        self.run = None
