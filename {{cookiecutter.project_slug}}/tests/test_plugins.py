"""PluginManager: plugins named in plugins.enabled are loaded and called; one that cannot load or
that raises prints one warning and training goes on to the end; Ctrl+C is never swallowed."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from config import Config
from conftest import read_records
from errors import ConfigurationError
from plugins.base import Plugin
from plugins.manager import PluginManager, load_plugins


class Recorder(Plugin):
    name = "recorder"

    def __init__(self, cfg: Config, fail_in: str | None = None) -> None:
        super().__init__(cfg)
        self.events: list[str] = []
        self.fail_in = fail_in

    def _seen(self, event: str) -> None:
        self.events.append(event)
        if event == self.fail_in:
            raise RuntimeError(f"broken in {event}")

    def on_train_begin(self, trainer) -> None:
        self._seen("on_train_begin")

    def on_log(self, trainer, record) -> None:
        self._seen("on_log")

    def on_train_end(self, trainer) -> None:
        self._seen("on_train_end")


def train(*args: str, callbacks: list | None = None) -> int:
    from training.train import main

    return main(list(args), extra_callbacks=callbacks)


def test_a_plugin_that_raises_is_switched_off_and_training_finishes(micro_project: Path,
                                                                    capsys) -> None:
    good, bad = Recorder(None), Recorder(None, fail_in="on_log")  # type: ignore[arg-type]
    bad.name = "broken"
    assert train(callbacks=[PluginManager([bad, good])]) == 0
    err = capsys.readouterr().err
    assert err.count("Warning: plugin 'broken' failed in on_log (RuntimeError: broken in "
                     "on_log)") == 1
    assert "training goes on" in err
    assert bad.events == ["on_train_begin", "on_log"]  # never called again
    assert good.events[0] == "on_train_begin" and good.events[-1] == "on_train_end"
    assert good.events.count("on_log") == len(read_records(micro_project))  # every record
    assert read_records(micro_project)[-1]["reason"] == "done"


def test_ctrl_c_inside_a_plugin_is_not_swallowed() -> None:
    class Interrupting(Recorder):
        def on_log(self, trainer, record) -> None:
            raise KeyboardInterrupt

    manager = PluginManager([Interrupting(None)])  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        manager.on_log(None, {})


@pytest.fixture
def fake_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """No plugins/wandb.py, and a plugins/huggingface.py whose load() raises."""
    monkeypatch.setitem(sys.modules, "plugins.wandb", None)  # as if the file were not there

    def broken_load(cfg):
        raise ConfigurationError("deployment.repo_id is empty", "set it")

    failing = types.ModuleType("plugins.huggingface")
    failing.load = broken_load
    monkeypatch.setitem(sys.modules, "plugins.huggingface", failing)


def test_plugins_that_cannot_load_warn_once_each(make_tiny_config, fake_plugins, capsys) -> None:
    cfg = make_tiny_config(**{"plugins.enabled": "wandb,huggingface"})
    assert load_plugins(cfg) == []
    err = capsys.readouterr().err
    assert "plugin 'wandb' is enabled but plugins/wandb.py is not in this project" in err
    assert "create-llm --plugins wandb" in err
    assert "plugin 'huggingface' failed to start (deployment.repo_id is empty; set it)" in err
    assert err.count("Warning:") == 2


def test_a_missing_package_is_named(make_tiny_config, monkeypatch, capsys) -> None:
    def import_module(name: str):
        raise ModuleNotFoundError("No module named 'wandb'", name="wandb")

    monkeypatch.setattr("plugins.manager.importlib.import_module", import_module)
    assert load_plugins(make_tiny_config(**{"plugins.enabled": "wandb"})) == []
    assert "needs the package 'wandb', which is not installed (pip install wandb)" in \
        capsys.readouterr().err


@pytest.mark.parametrize("value, expected", [
    ("wandbb", "did you mean `wandb`?"),
    ("synthex", "make synthex"),
])
def test_unknown_plugin_names_are_config_errors(make_tiny_config, value: str,
                                                expected: str) -> None:
    with pytest.raises(ConfigurationError, match="plugins.enabled") as error:
        make_tiny_config(**{"plugins.enabled": value})
    assert expected in error.value.suggestion
