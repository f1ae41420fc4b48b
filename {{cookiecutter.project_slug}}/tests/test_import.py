"""make import: a published Hugging Face checkpoint becomes this project's step 0.

    python -m pytest tests/test_import.py          # ~1 minute on 2 CPU cores, offline

Every checkpoint here is a microscopic random model saved by transformers itself
(`LlamaForCausalLM(LlamaConfig(...)).save_pretrained()`, Qwen2 too), with a byte-level BPE
tokenizer, so nothing is downloaded. Checked the way a user would notice:
- our GPT gives transformers' logits (fp32, within 1e-4) and the same greedy tokens: grouped-query
  attention with tied embeddings, untied, Qwen2's q/k/v biases, Llama 3's scaled RoPE;
- import then export gives back exactly the tensors of the original file, and its config;
- the project after an import: both checkpoints verify and hold what the other commands read,
  llm.config.js keeps every comment, `make tokenizer` keeps the tokenizer and says why, the chat
  template is kept, a training step from the imported weights lowers the loss;
- sharded weights and --dtype bf16;
- bad input (no weights, another architecture, an unsupported option, a tokenizer bigger than
  the embedding, a truncated or damaged file, a Hub id that does not exist, no network, a
  training run in the way) is one Error + Suggestion and changes no file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from config import GenerationConfig, load_config
from conftest import PROJECT_ROOT, JSONHandler, first_everyday
from errors import CreateLLMError, DataError
from runtime import checkpoints
from runtime.checkpoints import load_trained_model

transformers = pytest.importorskip("transformers")

TEXT = ("Once upon a time there was a little cat who liked to play in the garden. "
        "Every day the cat ran after the birds, and the birds sang in the old tree. ") * 20
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
VOCAB_ROWS = 320  # embedding rows: more than the tokenizer's ~300 tokens, as published models pad
SHAPE = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
         "num_attention_heads": 4, "max_position_embeddings": 128, "rms_norm_eps": 1e-5}


# ---- checkpoints that transformers wrote ----


def write_tokenizer(folder: Path, eos: str = "<|endoftext|>") -> None:
    """A byte-level BPE tokenizer of ~300 tokens, with tokenizer_config.json naming its eos and
    a ChatML chat template (as SmolLM2-Instruct's does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer=trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos,
        "bos_token": "<|im_start|>", "pad_token": {"content": "<|im_end|>"},
        "chat_template": CHAT_TEMPLATE}))


def randomize(model: torch.nn.Module) -> None:
    """Every parameter random (norm weights near 1, biases non-zero): a mapping that mixed up
    two tensors, or dropped a bias, changes the logits."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.1)


def save_checkpoint_folder(folder: Path, family: str = "llama", **config: Any) -> Path:
    """A random model of `family` (llama or qwen2) saved by transformers, with a tokenizer."""
    if family == "qwen2":
        cls, cfg_cls = transformers.Qwen2ForCausalLM, transformers.Qwen2Config
    else:
        cls, cfg_cls = transformers.LlamaForCausalLM, transformers.LlamaConfig
    shard = config.pop("max_shard_size", None)
    settings = {**SHAPE, "vocab_size": VOCAB_ROWS, **config}
    model = cls(cfg_cls(**settings))
    randomize(model)
    model.save_pretrained(folder, **({"max_shard_size": shard} if shard else {}))
    write_tokenizer(folder)
    return folder


CASES = {  # name -> (family, config)
    "gqa-tied": ("llama", {"num_key_value_heads": 2, "tie_word_embeddings": True,
                           "rope_theta": 1e5}),
    "untied": ("llama", {"num_key_value_heads": 4, "tie_word_embeddings": False}),
    "qwen2-bias": ("qwen2", {"num_key_value_heads": 2, "tie_word_embeddings": True,
                             "use_sliding_window": False}),
    "llama3-rope": ("llama", {"num_key_value_heads": 2, "tie_word_embeddings": True,
                              "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5,
                                                  "factor": 8.0, "low_freq_factor": 1.0,
                                                  "high_freq_factor": 4.0,
                                                  "original_max_position_embeddings": 64}}),
}


@pytest.fixture(scope="module")
def checkpoints_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One saved checkpoint per case (made once for the module)."""
    root = tmp_path_factory.mktemp("hf")
    return {name: save_checkpoint_folder(root / name, family, **dict(config))
            for name, (family, config) in CASES.items()}


def new_project(folder: Path) -> Path:
    """A project folder: this project's llm.config.js (as generated, comments and all)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "llm.config.js", folder / "llm.config.js")
    return folder


def run_import(project: Path, source: Path | str, *args: str) -> None:
    """`make import ARGS="--from SOURCE ..."`, in this process (errors raise)."""
    from importers.hf import main

    cwd = os.getcwd()
    os.chdir(project)
    try:
        main(["--from", str(source), *args])
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def imported(checkpoints_dir: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Path]:
    """Each case imported into a project of its own (done once for the module)."""
    root = tmp_path_factory.mktemp("projects")
    projects = {}
    for name, source in checkpoints_dir.items():
        projects[name] = new_project(root / name)
        run_import(projects[name], source)
    return projects


def ours(project: Path) -> torch.nn.Module:
    model, _ = load_trained_model("auto", project / "checkpoints", "cpu")
    return model


def theirs(source: Path) -> torch.nn.Module:
    return transformers.AutoModelForCausalLM.from_pretrained(source).eval()


# ---- the same model ----


@pytest.mark.parametrize("case", list(CASES))
def test_logits_and_greedy_tokens_are_transformers(case: str, checkpoints_dir, imported) -> None:
    from runtime.sampling import generate_tokens

    model, reference = ours(imported[case]), theirs(checkpoints_dir[case])
    x = torch.randint(0, VOCAB_ROWS, (2, 100))  # past llama3-rope's original 64 positions
    with torch.no_grad():
        difference = (model(x)[0] - reference(x).logits).abs().max().item()
    assert difference <= 1e-4, difference
    prompt = [5, 17, 42, 99]
    greedy = GenerationConfig(max_new_tokens=16, temperature=0.0, repetition_penalty=1.0)
    mine = list(generate_tokens(model, prompt, greedy))
    ids = torch.tensor([prompt])
    with torch.no_grad():  # transformers' greedy choice, token by token (no stop token)
        for _ in range(16):
            ids = torch.cat([ids, reference(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert mine == ids[0, len(prompt):].tolist()


def test_llama3_frequencies_are_transformers_own(checkpoints_dir) -> None:
    """The scaled RoPE frequencies equal transformers' _compute_llama3_parameters exactly, and
    differ from plain RoPE (the scaling is really applied)."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from models.architectures.gpt import llama3_inv_freq

    config = transformers.AutoConfig.from_pretrained(checkpoints_dir["llama3-rope"])
    expected, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    head_dim = config.hidden_size // config.num_attention_heads
    plain = 1.0 / (5e5 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    scaled = llama3_inv_freq(plain, 8.0, 1.0, 4.0, 64)
    assert torch.equal(scaled, expected)
    assert not torch.equal(scaled, plain)
    wavelengths = 2 * torch.pi / plain  # some frequencies kept, some divided, some blended
    assert (wavelengths < 16).any() and (wavelengths > 64).any() and \
        ((wavelengths >= 16) & (wavelengths <= 64)).any()


@pytest.mark.parametrize("case", ["gqa-tied", "untied", "qwen2-bias", "llama3-rope"])
def test_import_then_export_gives_back_the_same_tensors(case: str, checkpoints_dir, imported,
                                                       tmp_path: Path) -> None:
    from exporters.run import export_hf, load_trained
    from models.hf_layout import model_config_from_hf

    project = tmp_path / "project"
    shutil.copytree(imported[case], project)
    cwd = os.getcwd()
    os.chdir(project)
    try:
        cfg = load_config("llm.config.js")
        export_hf(cfg, load_trained(cfg))
    finally:
        os.chdir(cwd)
    original = load_file(checkpoints_dir[case] / "model.safetensors")
    exported = load_file(project / "export" / "hf" / "model.safetensors")
    assert sorted(exported) == sorted(original)
    for name, tensor in original.items():
        assert torch.equal(exported[name], tensor), name
    config = json.loads((project / "export" / "hf" / "config.json").read_text())
    source = json.loads((checkpoints_dir[case] / "config.json").read_text())
    assert config["architectures"] == source["architectures"]
    again = model_config_from_hf(config)
    assert again == model_config_from_hf(source)
    card = (project / "export" / "hf" / "README.md").read_text()
    assert "starts from a published checkpoint (imported from a local folder)" in card
    assert str(checkpoints_dir[case]) not in card and "trained from scratch" not in card
    loaded = theirs(project / "export" / "hf")  # transformers loads the export as it is
    x = torch.randint(0, VOCAB_ROWS, (1, 40))
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, theirs(checkpoints_dir[case])(x).logits,
                              atol=1e-5)


# ---- the project after an import ----


def test_the_checkpoints_hold_step_0_and_verify(imported) -> None:
    folder = imported["gqa-tied"] / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["best.json", "best.pt", "step_000000.json", "step_000000.pt"]
    for name in ("step_000000.pt", "best.pt"):
        assert checkpoints.verify_checkpoint(folder / name) is None
        assert checkpoints.read_sidecar(folder / name)["imported_from"].endswith("gqa-tied")
    assert (folder / "best.pt").read_bytes() == (folder / "step_000000.pt").read_bytes()
    state = checkpoints.load_checkpoint(folder / "best.pt")
    assert set(state) == {"model", "model_config", "config", "tokenizer_hash", "step",
                          "tokens_seen", "metrics", "imported_from"}  # no optimizer
    assert state["step"] == 0 and state["tokens_seen"] == 0 and state["metrics"] == {}
    assert state["model_config"]["vocab_size"] == VOCAB_ROWS
    assert state["model"]["lm_head.weight"].data_ptr() == \
        state["model"]["embed_tokens.weight"].data_ptr()  # tied: one tensor
    cfg = load_config(imported["gqa-tied"] / "llm.config.js")
    assert state["config"] == cfg.to_dict()
    from tokenizer.load import tokenizer_hash

    assert state["tokenizer_hash"] == tokenizer_hash(imported["gqa-tied"] / cfg.tokenizer.path)


def test_llm_config_gets_the_shape_and_keeps_every_comment(imported) -> None:
    before = (PROJECT_ROOT / "llm.config.js").read_text().splitlines()
    after = (imported["gqa-tied"] / "llm.config.js").read_text().splitlines()
    comment = lambda line: line.partition("//")[2].strip()  # noqa: E731
    assert [comment(line) for line in before if "//" in line] == \
        [comment(line) for line in after if "//" in line]
    assert len(after) == len(before)  # nothing added: the defaults needed no new key
    cfg = load_config(imported["gqa-tied"] / "llm.config.js")
    m = cfg.model
    assert (m.preset, m.layers, m.heads, m.kv_heads, m.dim, m.mlp_dim, m.max_length) == \
        ("custom", 2, 4, 2, 64, 96, 128)
    assert (m.rope_theta, m.norm_eps, m.tie_embeddings, m.qkv_bias) == (1e5, 1e-5, True, False)
    assert cfg.tokenizer.type == "bpe" and cfg.tokenizer.vocab_size == 300
    assert cfg.tokenizer.special_tokens == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert cfg.data.stride == 128
    qwen = load_config(imported["qwen2-bias"] / "llm.config.js").model
    assert qwen.qkv_bias is True
    llama3 = load_config(imported["llama3-rope"] / "llm.config.js").model
    assert (llama3.rope_scaling, llama3.rope_scaling_factor, llama3.rope_original_max_length) \
        == ("llama3", 8.0, 64)
    assert "// Llama 3's scaled RoPE frequencies" in \
        (imported["llama3-rope"] / "llm.config.js").read_text()


def test_the_tokenizer_and_chat_template_are_kept(imported, checkpoints_dir, capsys) -> None:
    from tokenizer.train import main as train_tokenizer

    project = imported["gqa-tied"]
    assert (project / "tokenizer" / "tokenizer.json").read_bytes() == \
        (checkpoints_dir["gqa-tied"] / "tokenizer.json").read_bytes()
    assert (project / "tokenizer" / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    cwd = os.getcwd()
    os.chdir(project)
    try:
        train_tokenizer([])  # make tokenizer
    finally:
        os.chdir(cwd)
    said = capsys.readouterr().out
    assert "came with the model imported from" in said and "keeping it" in said
    assert (project / "tokenizer" / "tokenizer.json").read_bytes() == \
        (checkpoints_dir["gqa-tied"] / "tokenizer.json").read_bytes()


def test_a_training_step_from_the_imported_weights_lowers_the_loss(imported) -> None:
    """Continued pretraining starts from the imported weights (its first loss is theirs), and
    learns."""
    from tokenizers import Tokenizer

    from training.trainer import build_trainer

    project = imported["untied"]
    state = checkpoints.load_checkpoint(project / "checkpoints" / "best.pt")
    overrides = {"training.batch_size": "8", "training.learning_rate": "3e-3",
                 "training.eval_batches": "2", "training.device": "cpu",
                 "training.precision": "fp32", "training.threads": "1"}
    cfg = load_config(project / "llm.config.js", overrides)
    tokenizer = Tokenizer.from_file(str(project / "tokenizer" / "tokenizer.json"))
    tokens = np.array(tokenizer.encode(TEXT * 3).ids, dtype=np.uint16)
    model_config = load_trained_model("auto", project / "checkpoints")[0].config
    trainer = build_trainer(cfg, model_config, tokens, tokens, {}, torch.device("cpu"), "fp32",
                            tokenizer=tokenizer)
    trainer.model.load_state_dict(state["model"])
    first = trainer.evaluate()["val_loss"]
    x = torch.tensor(tokens[:64].astype(np.int64))[None]
    with torch.no_grad():
        assert torch.equal(trainer.model(x)[0], ours(project)(x)[0])
    for _ in range(15):
        trainer.train_step(lr=3e-3)
    assert trainer.evaluate()["val_loss"] < first - 0.5


def test_sharded_weights_and_bf16(tmp_path: Path, capsys) -> None:
    source = save_checkpoint_folder(tmp_path / "sharded", num_key_value_heads=2,
                                    tie_word_embeddings=False, max_shard_size="40KB")
    assert (source / "model.safetensors.index.json").is_file()
    assert len(list(source.glob("model-*.safetensors"))) > 2
    fp32, bf16 = new_project(tmp_path / "fp32"), new_project(tmp_path / "bf16")
    run_import(fp32, source)
    run_import(bf16, source, "--dtype", "bf16")
    assert "peak memory" in capsys.readouterr().out
    full = checkpoints.load_checkpoint(fp32 / "checkpoints" / "best.pt")["model"]
    half = checkpoints.load_checkpoint(bf16 / "checkpoints" / "best.pt")["model"]
    for name, tensor in full.items():
        assert half[name].dtype == torch.bfloat16
        assert torch.equal(half[name], tensor.to(torch.bfloat16)), name
    reference = theirs(source)
    x = torch.randint(0, VOCAB_ROWS, (1, 50))
    with torch.no_grad():
        assert (ours(fp32)(x)[0] - reference(x).logits).abs().max() <= 1e-4


def test_importing_again_replaces_an_earlier_import(imported, checkpoints_dir,
                                                    tmp_path: Path) -> None:
    project = tmp_path / "again"
    shutil.copytree(imported["gqa-tied"], project)
    run_import(project, checkpoints_dir["untied"])
    assert load_config(project / "llm.config.js").model.tie_embeddings is False
    x = torch.randint(0, VOCAB_ROWS, (1, 20))
    with torch.no_grad():
        assert torch.allclose(ours(project)(x)[0], theirs(checkpoints_dir["untied"])(x).logits,
                              atol=1e-4)


# ---- bad input: one Error + Suggestion, and no file changed ----


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".llm.lock"}


def edit_config(folder: Path, **changes: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def no_weights(f: Path) -> None:
    (f / "model.safetensors").unlink()


def pickle_weights(f: Path) -> None:
    (f / "model.safetensors").rename(f / "pytorch_model.bin")


def truncated(f: Path) -> None:
    data = (f / "model.safetensors").read_bytes()
    (f / "model.safetensors").write_bytes(data[: len(data) // 2])


def damaged(f: Path) -> None:
    """Bytes overwritten in the middle of the values (the header intact)."""
    data = bytearray((f / "model.safetensors").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4096] = b"\xff" * 4096  # 0xffffffff is a NaN in fp32
    (f / "model.safetensors").write_bytes(bytes(data))


def big_tokenizer(f: Path) -> None:
    edit_config(f, vocab_size=200)  # fewer rows than the tokenizer's tokens...
    from safetensors.torch import save_file

    weights = load_file(f / "model.safetensors")  # ... and weights of that size
    weights["model.embed_tokens.weight"] = weights["model.embed_tokens.weight"][:200].clone()
    save_file(weights, str(f / "model.safetensors"), metadata={"format": "pt"})


BAD = {  # case -> (how the checkpoint folder is spoiled, words the error must contain)
    "no weights": (no_weights, "holds no weights"),
    "pickle weights": (pickle_weights, "pickle"),
    "gpt2": (lambda f: edit_config(f, architectures=["GPT2LMHeadModel"], model_type="gpt2"),
             "supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM"),
    "yarn": (lambda f: edit_config(f, rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                                       "rope_theta": 1e5}), "rope_type 'yarn'"),
    "sliding window": (lambda f: edit_config(f, architectures=["MistralForCausalLM"],
                                             model_type="mistral", sliding_window=64),
                       "sliding_window 64"),
    "o_proj bias": (lambda f: edit_config(f, attention_bias=True), "attention_bias"),
    "gelu": (lambda f: edit_config(f, hidden_act="gelu"), "hidden_act 'gelu'"),
    "tie mismatch": (lambda f: edit_config(f, tie_word_embeddings=False), "lm_head.weight"),
    "wrong shape": (lambda f: edit_config(f, intermediate_size=128), "[96, 64]"),
    "big tokenizer": (big_tokenizer, "would have no embedding"),
    "no tokenizer": (lambda f: (f / "tokenizer.json").unlink(), "no tokenizer.json"),
    "truncated": (truncated, "not a readable safetensors file"),
    "damaged": (damaged, "NaN or infinite"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_checkpoints_are_refused_before_anything_is_written(
        case: str, checkpoints_dir, tmp_path: Path) -> None:
    spoil, words = BAD[case]
    source = tmp_path / "source"
    shutil.copytree(checkpoints_dir["gqa-tied"], source)
    spoil(source)
    project = new_project(tmp_path / "project")
    before = snapshot(project)
    with pytest.raises(CreateLLMError) as error:
        run_import(project, source)
    assert words in error.value.message, error.value.message
    assert error.value.suggestion
    assert snapshot(project) == before


@pytest.mark.parametrize("info", [{"step": 100}, {"step": 100, "imported_from": "x/y"}],
                         ids=["trained", "trained-from-an-import"])
def test_a_training_run_is_never_replaced(imported, checkpoints_dir, tmp_path: Path,
                                          info: dict) -> None:
    project = tmp_path / "trained"
    shutil.copytree(imported["gqa-tied"], project)
    state = checkpoints.load_checkpoint(project / "checkpoints" / "best.pt")
    checkpoints.save_checkpoint(project / "checkpoints" / "step_000100.pt", state, info)
    before = snapshot(project)
    with pytest.raises(DataError, match="already holds a training run"):
        run_import(project, checkpoints_dir["untied"])
    assert snapshot(project) == before


def test_a_tokenizer_of_the_user_s_own_is_never_replaced(checkpoints_dir, tmp_path) -> None:
    project = new_project(tmp_path / "own")
    (project / "tokenizer").mkdir()
    (project / "tokenizer" / "tokenizer.json").write_bytes(
        (checkpoints_dir["untied"] / "tokenizer.json").read_bytes().replace(b"cat", b"dog"))
    before = snapshot(project)
    with pytest.raises(DataError, match="did not write"):
        run_import(project, checkpoints_dir["untied"])
    assert snapshot(project) == before


def run_cli(project: Path, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HOME": str(project / ".hf-home"), **(env or {})}
    full_env.pop("HF_TOKEN", None)
    full_env.pop("CREATE_LLM_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "importers.hf", *args], cwd=project,
                          env=full_env, capture_output=True, text=True, timeout=120)


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-2].startswith("Error: ") and lines[-1].startswith("Suggestion: "), lines
    for word in words:
        assert word in result.stderr, result.stderr


class NotFoundHub(JSONHandler):
    """A Hub that knows no repository (what huggingface.co answers for an unknown id)."""

    def do_GET(self) -> None:
        payload = b'{"error": "Repository not found"}'
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_HEAD = do_GET


@pytest.mark.slow
def test_a_hub_id_that_does_not_exist(tmp_path: Path) -> None:
    import threading

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFoundHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    project = new_project(tmp_path / "project")
    before = snapshot(project)
    try:
        result = run_cli(project, "--from", "nobody/no-such-model",
                         env={"HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
                              "NO_PROXY": "127.0.0.1"})
    finally:
        server.shutdown()
    assert_refused(result, "nobody/no-such-model was not found on the Hugging Face Hub")
    assert snapshot(project) == before


@pytest.mark.parametrize("env", first_everyday([
    {"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}]),
                         ids=["offline", "unreachable"])
def test_no_network_says_to_download_elsewhere(env: dict[str, str], tmp_path: Path) -> None:
    project = new_project(tmp_path / "project")
    before = snapshot(project)
    result = run_cli(project, "--from", "HuggingFaceTB/SmolLM2-135M", env=env)
    assert_refused(result, "no connection to the Hugging Face Hub",
                   "download the folder elsewhere", "--from ./SmolLM2-135M")
    assert snapshot(project) == before


@pytest.mark.slow
def test_the_command_line_refuses_a_bad_folder(tmp_path: Path) -> None:
    project = new_project(tmp_path / "project")
    (tmp_path / "empty").mkdir()
    assert_refused(run_cli(project, "--from", str(tmp_path / "empty")), "no config.json")
    assert_refused(run_cli(project, "--from", "not a path or an id"), "no such folder")
    assert_refused(run_cli(project), "--from")


def test_the_import_waits_for_no_one(checkpoints_dir, tmp_path: Path) -> None:
    """It takes the project's write lock: refused at once while e.g. a training runs."""
    from project_lock import LockedError, project_lock

    project = new_project(tmp_path / "locked")
    with project_lock("make train", project), pytest.raises(LockedError):
        run_import(project, checkpoints_dir["untied"])
    assert not (project / "checkpoints").exists()


def test_the_model_card_names_a_hub_model_it_started_from() -> None:
    from exporters.card import origin, yaml_metadata

    base, named = origin({"imported_from": "HuggingFaceTB/SmolLM2-135M"})
    assert base == "HuggingFaceTB/SmolLM2-135M" and "huggingface.co/HuggingFaceTB" in named
    assert 'base_model: "HuggingFaceTB/SmolLM2-135M"' in yaml_metadata(
        load_config(PROJECT_ROOT / "llm.config.js"), base)
    assert origin({"imported_from": "/home/me/models/x"})[0] is None
    assert origin({}) == (None, None)


# ---- the commands a user runs after an import ----


def run_command(project: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TOKENIZERS_PARALLELISM": "false"}
    if argv[0].endswith(".py"):
        argv = (str(PROJECT_ROOT / argv[0]), *argv[1:])
    result = subprocess.run([sys.executable, *argv], cwd=project, env=env, text=True,
                            capture_output=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_make_train_continues_from_the_import_and_finetune_trains_lora(imported, tmp_path):
    """make data, make train (continued pretraining from the imported weights, the embedding's
    padded rows kept), make resume, make finetune with LoRA (only the adapters change), and the
    merged export loads in transformers."""
    project = tmp_path / "project"
    shutil.copytree(imported["untied"], project)
    (project / "data" / "raw").mkdir(parents=True)
    for i in range(40):  # documents of real-ish text, for a validation split of its own
        (project / "data" / "raw" / f"doc{i}.txt").write_text(TEXT.replace("cat", f"cat {i}"))
    run_command(project, "-m", "data.prepare")
    small = ("--training.threads", "1", "--training.precision", "fp32", "--training.device",
             "cpu", "--logging.progress_bar", "false", "--training.gradient_accumulation", "1",
             "--training.log_interval", "1", "--checkpoints.save_interval", "4",
             "--checkpoints.save_total_limit", "1", "--training.eval_interval", "4",
             "--training.eval_batches", "2", "--training.warmup_steps", "2",
             "--training.learning_rate", "3e-3", "--model.max_length", "64",
             "--data.stride", "64")
    result = run_command(project, "-m", "training.train", "--training.max_steps", "8", *small)
    assert "Starting from the weights of checkpoints/step_000000.pt (imported from" in \
        result.stdout, result.stdout
    records = [json.loads(line) for line in
               (project / "logs" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < losses[0] - 0.3, losses
    folder = project / "checkpoints"
    steps = [s for s, _ in checkpoints.list_step_checkpoints(folder)]
    assert steps == [0, 8]  # save_total_limit 1 never rotates the import away
    trained = checkpoints.load_checkpoint(folder / "step_000008.pt")
    assert trained["model_config"]["vocab_size"] == VOCAB_ROWS  # the padded rows, kept
    assert trained["imported_from"] == str(imported["untied"].resolve()) or \
        trained["imported_from"]
    run_command(project, "-m", "training.train", "--resume", "auto", "--training.max_steps",
                "12", *small)
    assert [s for s, _ in checkpoints.list_step_checkpoints(folder)] == [0, 12]

    (project / "data" / "finetune").mkdir()
    (project / "data" / "finetune" / "chat.jsonl").write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": f"Say {w}."},
                                 {"role": "assistant", "content": w}]}) + "\n"
        for w in ("cat", "tree", "bird", "garden", "time", "day") * 10))
    result = run_command(project, "-m", "training.finetune", "--finetune.max_steps", "6",
                         "--finetune.eval_interval", "3", "--finetune.lora_rank", "4",
                         "--finetune.batch_size", "4", "--finetune.gradient_accumulation", "1",
                         *small[:10], "--model.max_length", "64", "--data.stride", "64")
    assert "LoRA rank 4: training" in result.stdout
    base = checkpoints.load_checkpoint(folder / "best.pt")["model"]
    tuned = checkpoints.load_checkpoint(folder / "finetune" / "best.pt")
    assert tuned["lora"]["rank"] == 4
    adapters = [k for k in tuned["model"] if ".lora_" in k]
    assert adapters and all(k.endswith(("lora_A", "lora_B")) for k in adapters)
    for key, tensor in base.items():  # every weight of the base is frozen: bit for bit
        assert torch.equal(tuned["model"][key], tensor), key
    assert any(tuned["model"][k].abs().sum() > 0 for k in adapters if k.endswith("lora_B"))
    run_command(project, "deploy.py", "export", "--checkpoint", "checkpoints/finetune/best.pt")
    exported = transformers.AutoModelForCausalLM.from_pretrained(project / "export" / "hf")
    merged, _ = load_trained_model(str(folder / "finetune" / "best.pt"), folder)
    x = torch.tensor([[1, 5, 9, 40]])
    with torch.no_grad():
        assert torch.allclose(exported(x).logits, merged(x)[0], atol=1e-4)
