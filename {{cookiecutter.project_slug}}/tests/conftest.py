"""Shared fixtures for the project's tests: microscopic models and configs, so the whole suite
runs on a laptop CPU in minutes.

    make test       # the everyday tests: not marked slow, browser or distributed (pyproject.toml)
    make test-all   # every test
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # `pytest tests/` from anywhere imports the project's code
    sys.path.insert(0, str(PROJECT_ROOT))

# Before torch starts OpenMP (see torch_env.py): idle threads sleep instead of spinning, so tests
# that run training subprocesses side by side do not slow each other down.
import torch_env  # noqa: E402, F401, I001

import torch  # noqa: E402

from config import ONLY_FOR, ModelConfig, available_architectures  # noqa: E402
from training.callbacks.base import Callback  # noqa: E402

# This project's architecture (a project has the code of one: gpt, bert or t5). Tests that are
# the same for every architecture build their models and configs for it.
ARCHITECTURE = available_architectures()[0]


class StopAt(Callback):
    """Send ourselves SIGTERM at a step: the same path as a pre-empted job or Ctrl+C (the run
    saves and stops; `make resume` continues)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, metrics) -> None:
        if trainer.step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def first_everyday(cases: list[Any]) -> list[Any]:
    """Cases of a one-argument parametrize with all but the first marked slow: `make test` runs
    the first, `make test-all` every one (each is a process of its own; the others feed the same
    code other inputs)."""
    return cases[:1] + [pytest.param(case, marks=pytest.mark.slow) for case in cases[1:]]


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state."""
    torch.manual_seed(0)


@pytest.fixture
def tiny_model_config() -> ModelConfig:
    """This project's architecture: 2 layers, width 32, vocab 256, context 64; gpt: 4 query heads
    sharing 2 k/v heads (GQA)."""
    return ModelConfig(architecture=ARCHITECTURE, layers=2, heads=4, kv_heads=2, dim=32,
                       mlp_dim=64, max_length=64, vocab_size=256)


def applies(section: str, key: str) -> bool:
    """Whether llm.config.js of this project's architecture has section.key (config.ONLY_FOR)."""
    return ARCHITECTURE in ONLY_FOR.get((section, key), (ARCHITECTURE,))


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    """A tokenizer of exactly 256 tokens with this project's special tokens (and t5's
    sentinels) first: what an objective needs, built in no time (a word-level vocabulary of
    made-up words). Pairs with tiny_model_config."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from config import load_config

    special = load_config(PROJECT_ROOT / "llm.config.js").tokenizer.all_special_tokens
    vocab = {token: i for i, token in enumerate(special)}
    vocab.update({f"w{i}": i for i in range(len(special), 256)})
    unk = next(t for t in special if "unk" in t.lower())
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(special)
    assert tok.get_vocab_size() == 256
    return tok


# ---- a model that has learned something: a 50-token cycle ----


def make_cycle_sequence(length: int = 2000, cycle: int = 50, vocab: int = 256) -> torch.Tensor:
    """A sequence walking a fixed random cycle of `cycle` distinct tokens: the token after t is
    always the same one, and never t itself (so copying the input cannot fit it)."""
    order = torch.randperm(vocab, generator=torch.Generator().manual_seed(0))[:cycle]
    return order[torch.arange(length) % cycle]


def train_next_token(model: torch.nn.Module, seq: torch.Tensor, shift: bool = True,
                     steps: int = 150, window: int = 32) -> torch.nn.Module:
    """A plain AdamW loop over random windows of seq, fed the way training/ feeds the model:
    x = window[:-1], y = window[1:]. shift=False is the earlier create-llm's bug (y = x)."""
    g = torch.Generator().manual_seed(1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(seq) - window - 1, (16,), generator=g).tolist()
        batch = torch.stack([seq[s : s + window + 1] for s in starts])  # (16, window + 1)
        x = batch[:, :-1]  # (16, window)
        y = batch[:, 1:] if shift else batch[:, :-1]  # (16, window)
        _, loss = model(x, targets=y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture
def cycle_sequence() -> torch.Tensor:
    return make_cycle_sequence()


@pytest.fixture
def next_token_trainer() -> Callable[..., torch.nn.Module]:
    """train_next_token, for tests that train their own variant."""
    return train_next_token


@pytest.fixture(scope="session")
def cycle_model() -> tuple[torch.nn.Module, torch.Tensor]:
    """(model, sequence): the 2-layer GQA model of tiny_model_config trained for a few seconds on
    make_cycle_sequence() with next-token targets over its whole 64-token context."""
    from models.architectures.gpt import GPT

    torch.manual_seed(0)
    config = ModelConfig(
        layers=2, heads=4, kv_heads=2, dim=32, mlp_dim=64, max_length=64, vocab_size=256
    )
    seq = make_cycle_sequence()
    return train_next_token(GPT(config), seq, window=64, steps=80), seq  # exact by ~40 steps


# Overrides that shrink any preset's llm.config.js to a model and run that take seconds.
TINY_PROJECT_OVERRIDES: dict[str, Any] = {
    "model.layers": 2, "model.heads": 4, "model.kv_heads": 2, "model.dim": 32,
    "model.mlp_dim": 64, "model.max_length": 64, "model.dropout": 0.0,
    "tokenizer.vocab_size": 320, "tokenizer.min_frequency": 2,
    "data.stride": 64, "data.sample_size_mb": 0.2,
    "training.batch_size": 4, "training.gradient_accumulation": 1, "training.max_steps": 20,
    "training.learning_rate": 0.003, "training.min_lr": 0.0003, "training.warmup_steps": 2,
    "training.eval_interval": 10, "training.eval_batches": 2, "training.log_interval": 5,
    "training.device": "cpu", "training.precision": "fp32", "training.compile": False,
    "checkpoints.save_interval": 10, "logging.progress_bar": False, "logging.tensorboard": False,
    "logging.dashboard": False, "plugins.enabled": "",
}


@pytest.fixture
def make_tiny_config(tmp_path: Path) -> Callable[..., Any]:
    """A function returning this project's config (llm.config.js) shrunk by
    TINY_PROJECT_OVERRIDES, with every folder it writes moved under tmp_path.

        cfg = make_tiny_config()                                  # defaults
        cfg = make_tiny_config(**{"training.max_steps": 5})       # plus your overrides
    """
    from config import load_config

    def make(**overrides: Any) -> Any:
        paths = {
            "data.raw_dir": tmp_path / "data" / "raw",
            "data.processed_dir": tmp_path / "data" / "processed",
            "tokenizer.path": tmp_path / "tokenizer" / "tokenizer.json",
            "checkpoints.dir": tmp_path / "checkpoints",
            "logging.dir": tmp_path / "logs",
        }
        values = {**TINY_PROJECT_OVERRIDES, **paths, **overrides}
        values = {key: value for key, value in values.items() if applies(*key.split("."))}
        as_text = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}
        return load_config(PROJECT_ROOT / "llm.config.js", as_text)

    return make


def write_project_config(folder: Path, *changes: dict[str, dict[str, Any]]) -> None:
    """Write folder/llm.config.js: this project's config with each of `changes` merged into its
    sections, in order, as a plain object literal. model.vocab_size is left out: a run takes it
    from the trained tokenizer; so are the keys this project's architecture does not have (the
    same changes serve gpt, bert and t5). Tests run the project's code in such a folder
    (PYTHONPATH)."""
    from config import load_config

    data = load_config(PROJECT_ROOT / "llm.config.js").to_dict()
    data["model"].pop("vocab_size")
    # Tests switch the extras on themselves: not whatever this project's llm.config.js has on.
    data["plugins"]["enabled"] = []
    data["logging"]["dashboard"] = False
    for change in changes:
        for section, values in change.items():
            data[section].update(values)
    # Only the keys this architecture's llm.config.js has (a bert config has no kv_heads).
    data = {section: {key: value for key, value in values.items() if applies(section, key)}
            for section, values in data.items()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "llm.config.js").write_text(f"module.exports = {json.dumps(data, indent=2)};\n")


def prepare_project(folder: Path, *changes: dict[str, dict[str, Any]],
                    env: dict[str, str] | None = None) -> Path:
    """A folder ready to train: its llm.config.js (write_project_config(folder, *changes)), a
    trained tokenizer and prepared data (the built-in corpus), made by the project's own
    commands, run with this project's code."""
    write_project_config(folder, *changes)
    (folder / "data" / "raw").mkdir(parents=True)
    env = env or {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    for module in ("tokenizer.train", "data.prepare"):
        result = subprocess.run([sys.executable, "-m", module], cwd=folder, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    return folder


# ---- serving deploy/replicate/ with cog's own HTTP server (no Docker) ----


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, data: dict | None = None, timeout: float = 120) -> dict:
    request = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def serve_cog(folder: Path, port: int) -> Iterator[str]:
    """`python -m cog.server.http` serving folder's predict.py:Runner; yields its base URL once
    it is ready, and stops it (this process's own child) afterwards."""
    # cog starts its worker with the `python` on PATH: make it this interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "COG_PREDICT_TYPE_STUB": "predict.py:Runner", "PORT": str(port),
           "NO_PROXY": "127.0.0.1", "PATH": path}
    server = subprocess.Popen([sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
                              cwd=folder, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if http_json(f"{url}/health-check", timeout=5).get("status") == "READY":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "cog did not start"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


# ---- a trained project in a folder (tests/test_bert.py, test_t5.py) ----


def run_in(folder: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """`python ARGS` in `folder` with this project's code, as a user runs a command there."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TOKENIZERS_PARALLELISM": "false"}
    env.pop("CREATE_LLM_DEBUG", None)
    return subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=600, input=stdin)


def trained_project(folder: Path, changes: dict[str, dict[str, Any]]) -> Path:
    """llm.config.js (this project's, with `changes`) in `folder`, the built-in stories, then
    `make tokenizer data train` and `make export` there."""
    write_project_config(folder, changes)
    (folder / "data" / "raw").mkdir(parents=True)
    for args in (("-m", "tokenizer.train"), ("-m", "data.prepare"), ("-m", "training.train"),
                 (str(PROJECT_ROOT / "deploy.py"), "export")):
        result = run_in(folder, *args)
        assert result.returncode == 0, result.stdout + result.stderr
    return folder


def evaluations(folder: Path) -> list[dict]:
    """The evaluation records of folder/logs/metrics.jsonl, in order."""
    lines = (folder / "logs" / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if "val_loss" in record]


# ---- a fake Hugging Face Hub on this machine (make deploy, the huggingface plugin) ----


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON (for the fake servers of the tests)."""

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, data: dict) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class FakeHub:
    """The calls create_repo + upload_folder make (create, validate the card's YAML, preupload,
    commit), answered the way the Hub does, and recorded. `fail` maps a path fragment to status
    codes to answer first, one per request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.files: dict[str, bytes] = {}
        self.fail: dict[str, list[int]] = {}
        hub = self

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.requests.append({"path": self.path, "body": body,
                                     "auth": self.headers.get("Authorization", "")})
                for fragment, codes in hub.fail.items():
                    if fragment in self.path and codes:
                        return self.answer(codes.pop(0), {"error": "no"})
                if self.path.startswith("/api/repos/create"):
                    repo = json.loads(body)
                    return self.answer(200, {"url": f"{hub.url}/{repo['organization']}/"
                                                    f"{repo['name']}"})
                if self.path.startswith("/api/validate-yaml"):  # the model card's metadata
                    return self.answer(200, {})
                if "/preupload/" in self.path:
                    files = json.loads(body)["files"]
                    return self.answer(200, {"files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in files]})
                if "/commit/" in self.path:
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            value = item["value"]
                            hub.files[value["path"]] = base64.b64decode(value["content"])
                    repo = "/".join(self.path.split("/")[3:5])  # /api/models/OWNER/NAME/...
                    return self.answer(200, {"commitUrl": f"{hub.url}/{repo}/commit/{'1' * 40}",
                                             "commitOid": "1" * 40})
                return self.answer(404, {"error": "unknown"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def created(self) -> dict:
        return json.loads(next(r["body"] for r in self.requests
                               if r["path"].startswith("/api/repos/create")))


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    yield hub
    hub.server.shutdown()



# ---- a prepared micro project: config, tokenizer and data, for tests that train ----

# 2 layers, width 32, vocab ~320, context 32: 20 steps take about a second on 2 CPU cores.
MICRO_RUN: dict[str, dict[str, Any]] = {
    "model": {"layers": 2, "heads": 2, "kv_heads": 2, "dim": 32, "mlp_dim": 96, "max_length": 32},
    "tokenizer": {"vocab_size": 320},
    "data": {"sample_size_mb": 0.3, "stride": 32},
    "training": {"batch_size": 8, "max_steps": 20, "warmup_steps": 2, "learning_rate": 3e-3,
                 "min_lr": 3e-4, "eval_interval": 10, "eval_batches": 2, "log_interval": 5,
                 "threads": 1, "device": "cpu", "precision": "fp32"},
    "checkpoints": {"save_interval": 10, "save_total_limit": 2},
    "logging": {"progress_bar": False, "sample_tokens": 8},
}


def run_project_module(folder: Path, module: str, *args: str,
                       env: dict[str, str] | None = None) -> Any:
    """`python -m module args` in folder, with this project's code: a CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TOKENIZERS_PARALLELISM": "false",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=folder, env=full_env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def micro_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with MICRO_RUN's llm.config.js, a trained tokenizer and the built-in
    corpus prepared. Copy it before changing it (the micro_project fixture does)."""
    return prepare_project(tmp_path_factory.mktemp("micro") / "micro-llm", MICRO_RUN)


@pytest.fixture
def micro_project(micro_prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of micro_prepared, as the working directory."""
    folder = tmp_path / "micro-llm"
    shutil.copytree(micro_prepared, folder)
    monkeypatch.chdir(folder)
    return folder


def read_records(folder: Path) -> list[dict[str, Any]]:
    """logs/metrics.jsonl of a project folder, one dict per line."""
    lines = (folder / "logs" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]
