"""Live model configuration: re-read `--model_config_file` every `--model_config_file_poll_wait_seconds`.

As TF Serving's `Server::PollFilesystemAndReloadConfig`: a daemon thread re-reads the file every N seconds and
hands the models it lists to `ModelManager.reconfigure` (models added are loaded, models removed unloaded, no
restart). A file that cannot be read or parsed, or lists an invalid entry, is logged as an error naming the file
and the previous configuration is kept (TF Serving logs "Failed to read ModelServerConfig file" and keeps
serving); the same error is logged once until the file changes. An unchanged configuration does nothing.
"""

from __future__ import annotations

import logging

from serving.server.config import ModelConfig, reload_models_config
from serving.server.manager import ModelManager
from serving.server.polling import Poller

log = logging.getLogger(__name__)


class ConfigFileWatcher:
    """Re-reads a models.config every `interval` seconds and applies it to `manager`; see the module docstring."""

    def __init__(self, manager: ModelManager, path: str, interval: float, current: tuple[ModelConfig, ...],
                 base_path_override: dict[str, str] | None = None) -> None:
        if interval <= 0:
            raise ValueError(f"model config poll interval must be > 0, got {interval}")
        self._manager = manager
        self._path = path
        self._current = tuple(current)
        self._override = dict(base_path_override or {})
        self._last_error = ""
        self._poller = Poller("model-config-watcher", interval, self.check,
                              f"model config: reloading {path} failed; will retry")

    @property
    def models(self) -> tuple[ModelConfig, ...]:
        """The configuration in force (the last one read successfully)."""
        return self._current

    def check(self) -> bool:
        """Read the file once and apply it if it changed; True when the manager was reconfigured."""
        try:
            models = reload_models_config(self._path, self._override)
        except ValueError as err:
            if str(err) != self._last_error:
                self._last_error = str(err)
                log.error("model config: %s; keeping the previous configuration (%s)", err,
                          ", ".join(m.name for m in self._current) or "no models")
            return False
        self._last_error = ""
        if models == self._current:
            return False
        self._manager.reconfigure(models)
        self._current = models
        return True

    def start(self) -> None:
        """Start polling in a daemon thread."""
        self._poller.start()

    def stop(self) -> None:
        """Stop polling (waits for a reload in progress)."""
        self._poller.stop()
