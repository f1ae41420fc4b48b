"""The huggingface plugin: when training ends, export the best model and push it to the Hub.

    plugins: { enabled: ['huggingface'] },                    // in llm.config.js
    huggingface: { push_on_best: false },
    deployment: { repo_id: 'your-name/my-llm', private: true, ... },

It does what `make export` then `make deploy` do (exporters/run.py, the same code): the checkpoint
of deployment.checkpoint ('auto': best.pt, else the newest) becomes export/hf/, which is uploaded
to deployment.repo_id. Log in once with `hf auth login` (or set HF_TOKEN); the token is never
printed or saved. The repository id and the token are checked when training starts, so a
missing one is said at once, not after hours of training.

push_on_best: true also pushes each new best checkpoint while training goes on. Those pushes run
in a background thread, one at a time: training does not wait for the network, and a new best
that arrives during an upload is pushed after it (the newest one only). A run stopped with
Ctrl+C is not pushed at the end (`make export deploy` pushes it when you are ready). A failed
push prints its error and training goes on.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from config import Config, valid_repo_id
from errors import CreateLLMError, DeploymentError
from exporters.run import deploy_hub, export_hf, load_trained
from plugins.base import Plugin


def check_ready(cfg: Config) -> None:
    """The repository id and a token, before training starts (DeploymentError if not)."""
    repo_id = cfg.deployment.repo_id
    if not repo_id or not valid_repo_id(repo_id):
        what = f"'{repo_id}', not a repository id" if repo_id else "empty"
        raise DeploymentError(
            f"deployment.repo_id is {what}: the huggingface plugin has nowhere to push",
            "set deployment.repo_id: 'your-name/model-name' in llm.config.js")
    from huggingface_hub import get_token

    if not get_token():
        raise DeploymentError("no Hugging Face token: the huggingface plugin cannot push",
                              "run `hf auth login` (or set HF_TOKEN) before training")


class HuggingFacePlugin(Plugin):
    name = "huggingface"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        check_ready(cfg)
        self.wanted = threading.Event()  # a new best is waiting to be pushed (or: stop)
        self.stopping = False
        self.worker: threading.Thread | None = None

    def push(self) -> bool:
        """Export deployment.checkpoint to export/hf/ and upload it; errors are printed."""
        try:
            export_hf(self.cfg, load_trained(self.cfg))
            deploy_hub(self.cfg)
            return True
        except CreateLLMError as error:
            print(f"huggingface: the push failed: {error.message}\n  {error.suggestion}",
                  file=sys.stderr, flush=True)
            return False

    def _push_bests(self) -> None:
        """The background thread of push_on_best: one push at a time, the newest best."""
        while True:
            self.wanted.wait()
            if self.stopping:
                return
            self.wanted.clear()
            self.push()

    def on_evaluate(self, trainer: Any, metrics: dict[str, Any]) -> None:
        # The checkpoint callback runs first: best.pt is already on disk.
        if not (self.cfg.huggingface.push_on_best and metrics.get("is_best")):
            return
        if self.worker is None:
            self.worker = threading.Thread(target=self._push_bests, name="huggingface-push",
                                           daemon=True)
            self.worker.start()
        self.wanted.set()

    def on_train_end(self, trainer: Any) -> None:
        if self.worker is not None:  # let a push in progress finish; the one below is newer
            self.stopping = True
            self.wanted.set()
            self.worker.join()
        if trainer.stop_reason is not None:
            print(f"huggingface: not pushed ({trainer.stop_reason}: the run stopped early); "
                  "`make export deploy` pushes it when you are ready")
            return
        print(f"huggingface: pushing the trained model to {self.cfg.deployment.repo_id}")
        self.push()


def load(cfg: Config) -> HuggingFacePlugin:
    return HuggingFacePlugin(cfg)
