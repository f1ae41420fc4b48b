"""`create-llm NAME --from PATH_OR_HUB_ID`: a project that starts from a published checkpoint.

    .venv/bin/python -m pytest tests/test_from.py -q

Through typer's CliRunner, without a real install (the install and the project's import are
replaced where a test says so): the checkpoint's config.json gives the project its shape before
anything is written; conflicting flags, a folder that is not a checkpoint, an architecture the
import does not know and a Hub that cannot be reached are each one Error + Suggestion with
nothing written; a Hub id is read from a (fake) Hub or the Hugging Face cache; and the
`make import` the summary prints works as printed (run with this interpreter).
"""

import ast
import json
import os
import shlex
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import PROJECT_TEMPLATE, makefile_targets, parse_llm_config, printed_commands
from typer.testing import CliRunner

from create_llm import checkpoint, cli, install

runner = CliRunner()
QUICK = ["--yes", "--skip-install", "--no-git"]
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 320,
          "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
          "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": True}


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(cli.app, list(args), env=env)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty Hugging Face cache


def write_checkpoint(folder: Path, config: dict | None = None) -> Path:
    """A Hugging Face Llama folder made by hand: config.json, random weights under Llama's
    names, a byte-level BPE tokenizer."""
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    config = {**CONFIG, **(config or {})}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    d, m, kv = config["hidden_size"], config["intermediate_size"], config["num_key_value_heads"]
    kv_dim = kv * d // config["num_attention_heads"]
    shapes = {"model.embed_tokens.weight": (config["vocab_size"], d), "model.norm.weight": (d,)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight":
                       (d,), p + "self_attn.q_proj.weight": (d, d), p + "self_attn.k_proj.weight":
                       (kv_dim, d), p + "self_attn.v_proj.weight": (kv_dim, d),
                       p + "self_attn.o_proj.weight": (d, d), p + "mlp.gate_proj.weight": (m, d),
                       p + "mlp.up_proj.weight": (m, d), p + "mlp.down_proj.weight": (d, m)})
    generator = torch.Generator().manual_seed(0)
    save_file({name: 0.1 * torch.randn(shape, generator=generator)
               for name, shape in shapes.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["Once upon a time there was a little cat."] * 20,
                            trainer=trainers.BpeTrainer(
                                vocab_size=300, special_tokens=["<|endoftext|>"],
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                show_progress=False))
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    return folder


@pytest.fixture
def source(tmp_path) -> Path:
    return write_checkpoint(tmp_path / "downloads" / "tiny-llama")


def assert_refused(result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "Error: " in result.output and "Suggestion: " in result.output, result.output
    for word in words:
        assert word in result.output, result.output


def nothing_written(tmp_path: Path) -> bool:
    return not (tmp_path / "my-llm").exists()


# ---- a local folder ----


def test_the_project_gets_the_checkpoint_s_shape(source) -> None:
    result = invoke("my-llm", "--from", str(source), *QUICK)
    assert result.exit_code == 0, result.output
    config = parse_llm_config(Path("my-llm/llm.config.js"))
    assert config["model"]["architecture"] == "gpt" and config["model"]["preset"] == "custom"
    assert (config["model"]["layers"], config["model"]["heads"], config["model"]["dim"]) == \
        (2, 4, 64)
    assert config["model"]["max_length"] == 2048  # its 4096, at most the import's default
    assert config["tokenizer"]["vocab_size"] == 320
    answers = json.loads(Path("my-llm/.cookiecutter.json").read_text())["cookiecutter"]
    assert answers["description"] == "A language model that starts from tiny-llama"
    assert "2 layers, width 64, 4 heads / 2 key-value heads" in result.output
    assert "context 2,048 of its 4,096" in result.output


def test_without_install_the_next_steps_end_in_the_import(source) -> None:
    result = invoke("my-llm", "--from", str(source), *QUICK)
    assert result.exit_code == 0, result.output
    commands = printed_commands(result.output)
    targets = makefile_targets(Path("my-llm/Makefile"))
    assert {command.split()[1] for command in commands if command.startswith("make ")} <= targets
    assert [c.split()[1] for c in commands if c.startswith("make ")][:2] == ["setup", "import"]
    expected = f'make import ARGS="--from {shlex.quote(str(source.resolve()))}"'
    assert expected in result.output  # absolute: it is run inside the project folder


def test_the_printed_import_works_as_printed(source, tmp_path) -> None:
    """The project is rendered, then its `make import ...` line, run in the project with this
    interpreter standing in for the project's .venv, imports the checkpoint."""
    result = invoke("my-llm", "--from", str(source), *QUICK)
    line = next(line.strip() for line in result.output.splitlines()
                if line.strip().startswith("make import"))
    command = line.split("   ")[0]  # the command, without its description
    env = {**os.environ, "PYTHONPATH": "", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(f"{command} PYTHON={shlex.quote(sys.executable)}", shell=True,
                          cwd=tmp_path / "my-llm", env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Imported" in done.stdout and "peak memory" in done.stdout
    project = tmp_path / "my-llm"
    assert (project / "checkpoints" / "best.pt").is_file()
    assert (project / "tokenizer" / "tokenizer.json").read_bytes() == \
        (source / "tokenizer.json").read_bytes()
    model = parse_llm_config(project / "llm.config.js")["model"]
    assert (model["kv_heads"], model["mlp_dim"], model["rope_theta"]) == (2, 96, 100000.0)


def test_with_install_the_project_s_own_import_runs(source, monkeypatch) -> None:
    installs, imports = [], []
    monkeypatch.setattr(install, "install", lambda *args, **kwargs: installs.append(args))
    monkeypatch.setattr(checkpoint, "import_into",
                        lambda project, src, report=print: imports.append((project, src)))
    result = invoke("my-llm", "--from", str(source), "--yes", "--no-git")
    assert result.exit_code == 0, result.output
    assert installs and imports == [(Path("my-llm").resolve(), str(source))]
    assert "imported as checkpoints/step_000000.pt" in result.output
    makes = [c.split()[1] for c in printed_commands(result.output) if c.startswith("make ")]
    assert makes == ["generate", "data", "train", "help"]  # help: "Run `make help` ..."


def test_the_import_command_is_the_project_s(source, tmp_path) -> None:
    project = tmp_path / "my-llm"
    assert checkpoint.import_command(project, str(source)) == [
        str(project / ".venv" / "bin" / "python"), "-m", "importers.hf", "--from",
        str(source.resolve())]
    assert checkpoint.import_command(project, "owner/name")[-1] == "owner/name"


def test_a_failed_import_says_how_to_run_it_again(source, monkeypatch) -> None:
    monkeypatch.setattr(install, "install", lambda *args, **kwargs: None)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1))
    result = invoke("my-llm", "--from", str(source), "--yes", "--no-git")
    assert_refused(result, "importing", "make import ARGS=")
    assert Path("my-llm/Makefile").is_file()  # the project itself is complete


# ---- refused before anything is written ----


@pytest.mark.parametrize("flags, words", [
    (["--model", "bert"], "--model bert conflicts"),
    (["--template", "small"], "--template small conflicts"),
    (["--layers", "4"], "--layers conflicts"),
    (["--tokenizer", "wordpiece"], "--tokenizer wordpiece conflicts"),
    (["custom_dim=128"], "--dim conflicts"),
])
def test_flags_that_conflict_with_from(source, tmp_path, flags, words) -> None:
    assert_refused(invoke("my-llm", "--from", str(source), *flags, *QUICK), words)
    assert nothing_written(tmp_path)


def test_a_folder_that_is_not_a_checkpoint(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    assert_refused(invoke("my-llm", "--from", str(tmp_path / "empty"), *QUICK),
                   "no config.json")
    assert_refused(invoke("my-llm", "--from", "no such folder", *QUICK), "not a Hub id")
    assert nothing_written(tmp_path)


def test_an_architecture_the_import_does_not_know(tmp_path) -> None:
    folder = write_checkpoint(tmp_path / "gpt2", {"architectures": ["GPT2LMHeadModel"]})
    assert_refused(invoke("my-llm", "--from", str(folder), *QUICK), "GPT2LMHeadModel",
                   "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM")
    assert nothing_written(tmp_path)


def test_the_supported_classes_are_the_import_s() -> None:
    """The wrapper's list is the project's models/hf_layout.py FAMILIES (read without torch)."""
    tree = ast.parse((PROJECT_TEMPLATE / "models" / "hf_layout.py").read_text())
    families = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                    and getattr(node.targets[0], "id", "") == "FAMILIES")
    assert tuple(key.value for key in families.keys) == checkpoint.SUPPORTED


# ---- a Hub id ----


class FakeHubFiles(BaseHTTPRequestHandler):
    """/{owner}/{name}/resolve/main/config.json for one repository; 404 for any other."""

    repo = "owner/tiny"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        found = self.path == f"/{self.repo}/resolve/main/config.json"
        body = json.dumps(CONFIG if found else {"error": "Repository not found"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake_hub(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHubFiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield server
    server.shutdown()


def test_a_hub_id_is_read_from_the_hub(fake_hub) -> None:
    result = invoke("my-llm", "--from", "owner/tiny", *QUICK)
    assert result.exit_code == 0, result.output
    assert parse_llm_config(Path("my-llm/llm.config.js"))["model"]["layers"] == 2
    assert 'make import ARGS="--from owner/tiny"' in result.output


def test_a_hub_id_that_does_not_exist(fake_hub, tmp_path) -> None:
    assert_refused(invoke("my-llm", "--from", "owner/nothing", *QUICK),
                   "owner/nothing was not found on the Hugging Face Hub")
    assert nothing_written(tmp_path)


def test_no_network_says_to_download_elsewhere(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert_refused(invoke("my-llm", "--from", "HuggingFaceTB/SmolLM2-135M", *QUICK),
                   "cannot reach the Hugging Face Hub", "Download the folder elsewhere",
                   "--from ./SmolLM2-135M")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_refused(invoke("my-llm", "--from", "HuggingFaceTB/SmolLM2-135M", *QUICK),
                   "HF_HUB_OFFLINE")
    assert nothing_written(tmp_path)


def test_offline_a_cached_hub_id_works(monkeypatch, tmp_path) -> None:
    """The Hugging Face cache's layout: models--owner--name/refs/main -> snapshots/<rev>/."""
    repo = tmp_path / "hf-home" / "hub" / "models--owner--cached"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text(json.dumps(CONFIG))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke("my-llm", "--from", "owner/cached", *QUICK)
    assert result.exit_code == 0, result.output
