"""The Plugin base class: a training callback (training/callbacks/base.py) with a name.

A plugin handles the same events as any callback (on_train_begin, on_step_end, on_evaluate,
on_log, on_train_end) and gets the whole config. Write your own:

    # plugins/myplugin.py
    from plugins.base import Plugin

    class MyPlugin(Plugin):
        name = "myplugin"

        def on_log(self, trainer, record):
            if record.get("type") == "eval":
                print("validation loss", record["val_loss"])

    def load(cfg):
        return MyPlugin(cfg)

then add 'myplugin' to KNOWN_PLUGINS in config.py and to `plugins.enabled` in llm.config.js.
"""

from __future__ import annotations

from config import Config
from training.callbacks.base import Callback


class Plugin(Callback):
    name = "plugin"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
