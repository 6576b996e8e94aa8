"""Weights & Biases tracking (``logger=wandb``) that can never fail, hang or slow down a run.

Online when an API key is available, offline otherwise (run files under ``<run dir>/wandb/``, upload
later with ``wandb sync``). An unreachable server, a timeout or any W&B error turns into one warning
line and offline logging (or, failing that, no logging); the run and its local files go on.
"""

from __future__ import annotations

import netrc
import os
import socket
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


def server_reachable(timeout: float) -> str | None:
    """None if a TCP connection to the W&B server opens within ``timeout`` s, else the reason."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return None
    except OSError as error:
        return f"{url.hostname}:{port} unreachable ({error.strerror or error})"


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
            reason = server_reachable(min(init_timeout, 10.0))
            if reason is None:
                self.run = self._init("online", init_timeout, kwargs)
                if self.run is not None:
                    return
            else:
                _warn(f"{reason}; logging offline instead (`wandb sync` uploads it later)")
            wanted = "offline"
        if wanted in ("offline", "disabled"):
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

    def summary(self, metrics):
        # Each part on its own, most important first: one failing part does not lose the others.
        wandb, metric = self._wandb if self.run is not None else None, metrics["metric"]
        self._safely(
            "summary",
            lambda: self.run.summary.update(
                {f"test/{name}_{metric}": values[metric] for name, values in metrics["results"].items()}
                | {f"agreement/{pair}": value for pair, value in metrics.get("agreement", {}).items()}
                | {f"size/{key}": value for key, value in metrics["sizes"].items()}
            ),
            disable=False,
        )
        rows = [[name, values[metric]] for name, values in metrics["results"].items()]
        self._safely(
            "results table",
            lambda: self.run.log({"results": wandb.Table(columns=["model", metric], data=rows)}, step=self._step + 1),
            disable=False,
        )
        self._safely(
            "config",
            lambda: self.run.config.update({"provenance": metrics.get("provenance", {})}, allow_val_change=True),
            disable=False,
        )
        model = self.run_dir / "model_int8.tflite"
        if model.exists():

            def artifact():
                art = wandb.Artifact(f"{metrics['name']}-int8", type="model", metadata=metrics)
                art.add_file(str(model))
                art.add_file(str(self.run_dir / "card.md"))
                self.run.log_artifact(art, aliases=["latest"])

            self._safely("model artifact", artifact, disable=False)

    def finish(self):
        self._safely("finish", lambda: self.run.finish())
        self.run = None
