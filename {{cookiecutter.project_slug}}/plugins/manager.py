"""Load the plugins named in `plugins.enabled` and run them so that none can stop training.

PluginManager is one callback that forwards every event to each plugin. A plugin that cannot be
loaded (its file was not generated, its package is not installed, its settings are wrong) or that
raises during an event prints one warning and is switched off for the rest of the run; training
goes on. Ctrl+C is never swallowed.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from config import Config
from errors import CreateLLMError
from plugins.base import Plugin
from training.callbacks.base import Callback


def _warn(message: str) -> None:
    print(f"Warning: {message}; training goes on without it", file=sys.stderr, flush=True)


def _reason(error: BaseException) -> str:
    if isinstance(error, CreateLLMError):  # a known problem: say it with its fix
        return f"{error.message}; {error.suggestion}" if error.suggestion else error.message
    text = (str(error).strip().splitlines() or [""])[0][:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def load_plugins(cfg: Config) -> list[Plugin]:
    """The enabled plugins that loaded; each failure is one warning."""
    plugins = []
    for name in cfg.plugins.enabled:
        try:
            module = importlib.import_module(f"plugins.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"plugins.{name}":
                _warn(f"plugin '{name}' is enabled but plugins/{name}.py is not in this project "
                      f"(re-create the project with `create-llm --plugins {name}`, or remove "
                      "it from plugins.enabled)")
            else:
                _warn(f"plugin '{name}' needs the package '{error.name}', which is not "
                      f"installed (pip install {error.name})")
            continue
        except Exception as error:  # a plugin's own bug must not stop training
            _warn(f"plugin '{name}' failed to load ({_reason(error)})")
            continue
        try:
            plugin = module.load(cfg)
        except Exception as error:
            _warn(f"plugin '{name}' failed to start ({_reason(error)})")
            continue
        if plugin is not None:
            plugins.append(plugin)
    return plugins


class PluginManager(Callback):
    def __init__(self, plugins: list[Plugin]) -> None:
        self.plugins = list(plugins)

    @classmethod
    def from_config(cls, cfg: Config) -> PluginManager:
        return cls(load_plugins(cfg))

    def _call(self, event: str, *args: Any) -> None:
        for plugin in list(self.plugins):
            try:
                getattr(plugin, event)(*args)
            except Exception as error:
                self.plugins.remove(plugin)
                _warn(f"plugin '{plugin.name}' failed in {event} ({_reason(error)}) and is "
                      "switched off")

    def on_train_begin(self, trainer: Any) -> None:
        self._call("on_train_begin", trainer)

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self._call("on_step_end", trainer, metrics)

    def on_evaluate(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self._call("on_evaluate", trainer, metrics)

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        self._call("on_log", trainer, record)

    def on_train_end(self, trainer: Any) -> None:
        self._call("on_train_end", trainer)
