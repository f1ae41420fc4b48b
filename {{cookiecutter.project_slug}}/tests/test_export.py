"""make export and make deploy, checked the way a user would notice them failing.

    python -m pytest tests/test_export.py              # ~1-2 minutes on 2 CPU cores
    python -m pytest tests/test_export.py -m "not slow"

A microscopic project is trained once (a few seconds) and exported once; then:
- Hugging Face folder: transformers loads it with no custom code, its logits equal ours (fp32,
  max |diff| <= 1e-5), greedy `pipeline("text-generation")` writes the same text as
  `make generate`, and AutoTokenizer gives our ids on ASCII, unicode and whitespace runs;
  bf16/fp16 exports are half the size and still load;
- GGUF: read back with gguf.GGUFReader, the keys, tensor names and shapes are llama.cpp's
  "llama", undoing the q/k permutation gives our weights, tokens and merges are ours. Running it
  in llama.cpp is the slow test at the end (skipped without llama-cpp-python);
- Hub: `make deploy` against a fake Hub on 127.0.0.1 sends exactly the export folder's files,
  byte for byte, private; passing failures are retried; 401, 403, no network, no token give
  an Error/Suggestion; the token is never printed or written;
- Replicate: deploy/replicate/ served by cog's own HTTP server (no Docker) answers a prediction;
- bad inputs: each gives one `Error:` and a `Suggestion:`, no traceback, and changes no file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from conftest import (
    FakeHub,
    first_everyday,
    free_port,
    http_json,
    serve_cog,
    write_project_config,
)
from runtime.checkpoints import load_trained_model

PROJECT = Path(__file__).resolve().parents[1]
PROMPT = "Once upon a time"
NEW_TOKENS = 24  # with the prompt, inside the 64-token context (no window sliding)
TOKEN = "hf_testtokenthatmustneverbeprinted0123"
MICRO = {
    "model": {"layers": 2, "heads": 2, "kv_heads": 1, "dim": 32, "mlp_dim": 96, "max_length": 64},
    "tokenizer": {"vocab_size": 400},
    "data": {"sample_size_mb": 0.3, "stride": 64},
    "training": {"batch_size": 8, "max_steps": 150, "warmup_steps": 5, "learning_rate": 1e-2,
                 "min_lr": 1e-3, "eval_interval": 75, "eval_batches": 4, "log_interval": 25,
                 "threads": 1, "device": "cpu", "precision": "fp32"},
    "checkpoints": {"save_interval": 75},
    "logging": {"progress_bar": False},
}
STRINGS = ["Hello, world!", "  two  spaces,\t\ttabs and\n\nnew lines   ", "it 's , ok .",
           "café naïve 日本語 🙂 ÿ", "<|endoftext|>Once upon a time<|endoftext|>", "x" * 50]


def run(folder: Path, *args: str, env: dict[str, str] | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(PROJECT), "TOKENIZERS_PARALLELISM": "false",
                "HF_HOME": str(folder / ".hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1",
                "NO_PROXY": "127.0.0.1,localhost", **(env or {})}
    if "HF_TOKEN" not in (env or {}):  # never the developer's own token
        full_env.pop("HF_TOKEN", None)
    return subprocess.run([sys.executable, *args], cwd=folder, env=full_env, text=True,
                          capture_output=True, timeout=timeout)


def deploy(folder: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
    return run(folder, str(PROJECT / "deploy.py"), *args, **kwargs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project trained for 150 steps, exported to export/hf (fp32) and export/gguf (f32)."""
    folder = tmp_path_factory.mktemp("exported") / "my-llm"
    write_project_config(folder, MICRO)
    (folder / "data" / "raw").mkdir(parents=True)
    for args in (("-m", "tokenizer.train"), ("-m", "data.prepare"), ("-m", "training.train")):
        result = run(folder, *args)
        assert result.returncode == 0, result.stdout + result.stderr
    for args in (("export",), ("export", "--format", "gguf", "--gguf-type", "f32")):
        result = deploy(folder, *args)
        assert result.returncode == 0, result.stdout + result.stderr
    return folder


@pytest.fixture
def project(exported: Path, tmp_path: Path) -> Path:
    """A copy of the exported project that a test may change."""
    shutil.copytree(exported, tmp_path / "my-llm")
    return tmp_path / "my-llm"


def ours(folder: Path) -> tuple[torch.nn.Module, Tokenizer]:
    model, _ = load_trained_model("auto", folder / "checkpoints", "cpu")
    return model, Tokenizer.from_file(str(folder / "tokenizer" / "tokenizer.json"))


# ---- 1. the Hugging Face folder ----


def test_the_folder_has_what_transformers_needs(exported: Path) -> None:
    hf = exported / "export" / "hf"
    assert sorted(p.name for p in hf.iterdir()) == [
        "README.md", "config.json", "generation_config.json", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((hf / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "auto_map" not in config
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 10000.0
    assert config["tie_word_embeddings"] is True
    assert json.loads((hf / "tokenizer_config.json").read_text())["tokenizer_class"] == \
        "PreTrainedTokenizerFast"
    card = (hf / "README.md").read_text()
    assert card.startswith("---\nlicense: ") and "library_name: transformers" in card
    for fact in ("Parameters", "Training steps | 150", "Validation bits per byte",
                 "Built-in sample stories", 'from_pretrained("export/hf")', PROMPT):
        assert fact in card, fact


def test_transformers_gives_our_logits_and_our_token_ids(exported: Path) -> None:
    transformers = pytest.importorskip("transformers")
    hf = exported / "export" / "hf"
    theirs = transformers.AutoModelForCausalLM.from_pretrained(hf).eval()
    their_tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    model, tokenizer = ours(exported)
    assert type(theirs).__name__ == "LlamaForCausalLM"
    x = torch.randint(0, model.config.vocab_size, (2, model.config.max_length))
    with torch.no_grad():
        difference = (model(x)[0] - theirs(x).logits).abs().max().item()
    assert difference <= 1e-5, difference
    for text in STRINGS:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        assert their_tokenizer(text)["input_ids"] == ids, text
        assert their_tokenizer.decode(ids) == text


def transformers_greedy(hf: Path) -> str:
    """PROMPT and NEW_TOKENS greedy tokens, by transformers' text-generation pipeline."""
    import transformers

    generate = transformers.pipeline(
        "text-generation", model=transformers.AutoModelForCausalLM.from_pretrained(hf),
        tokenizer=transformers.AutoTokenizer.from_pretrained(hf))
    return generate(PROMPT, max_new_tokens=NEW_TOKENS, do_sample=False,
                    repetition_penalty=1.0)[0]["generated_text"]


def test_greedy_pipeline_text_equals_make_generate(exported: Path) -> None:
    pytest.importorskip("transformers")
    theirs = transformers_greedy(exported / "export" / "hf")
    result = run(exported, "-m", "evaluation.generate", "--prompt", PROMPT, "--temperature", "0",
                 "--repetition-penalty", "1", "--max-new-tokens", str(NEW_TOKENS))
    assert result.returncode == 0, result.stderr
    assert result.stdout.removesuffix("\n") == theirs
    assert len(theirs) > len(PROMPT) + 10  # the model wrote something worth comparing


@pytest.mark.parametrize("dtype", first_everyday(["bf16", "fp16"]))
def test_half_precision_exports_are_half_the_size_and_load(project: Path, dtype: str) -> None:
    full = (project / "export" / "hf" / "model.safetensors").stat().st_size
    result = deploy(project, "export", "--dtype", dtype)
    assert result.returncode == 0, result.stderr
    half = (project / "export" / "hf" / "model.safetensors").stat().st_size
    assert half < 0.55 * full
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(project / "export" / "hf")
    assert theirs.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]


# ---- 2. GGUF ----


def test_the_gguf_file_holds_our_model_and_tokenizer(exported: Path) -> None:
    gguf = pytest.importorskip("gguf")
    from exporters.gguf import unpermute_from_llama_cpp

    model, tokenizer = ours(exported)
    c = model.config
    reader = gguf.GGUFReader(exported / "export" / "gguf" / "my-llm-f32.gguf")
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    assert field("general.architecture") == "llama"
    assert (field("llama.block_count"), field("llama.embedding_length"),
            field("llama.attention.head_count"), field("llama.attention.head_count_kv"),
            field("llama.context_length"), field("llama.rope.dimension_count")) == \
        (c.layers, c.dim, c.heads, c.kv_heads, c.max_length, c.head_dim)
    assert (field("tokenizer.ggml.model"), field("tokenizer.ggml.pre")) == ("gpt2", "gpt-2")
    vocab = tokenizer.get_vocab()
    assert field("tokenizer.ggml.tokens") == sorted(vocab, key=vocab.get)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    assert field("tokenizer.ggml.merges") == [m if isinstance(m, str) else " ".join(m)
                                              for m in merges]
    assert field("tokenizer.ggml.eos_token_id") == 0 and not field("tokenizer.ggml.add_bos_token")

    tensors = {t.name: torch.from_numpy(t.data.copy()) for t in reader.tensors}
    assert "output.weight" not in tensors  # tied: llama.cpp reuses token_embd
    assert len(tensors) == 2 + 9 * c.layers
    state = model.state_dict()
    assert torch.equal(tensors["token_embd.weight"], state["embed_tokens.weight"])
    for i in range(c.layers):
        ours_q, ours_k = (state[f"layers.{i}.self_attn.{n}_proj.weight"] for n in "qk")
        assert not torch.equal(tensors[f"blk.{i}.attn_q.weight"], ours_q)  # it is permuted
        assert torch.equal(unpermute_from_llama_cpp(tensors[f"blk.{i}.attn_q.weight"], c.heads),
                           ours_q)
        assert torch.equal(unpermute_from_llama_cpp(tensors[f"blk.{i}.attn_k.weight"],
                                                    c.kv_heads), ours_k)
        assert torch.equal(tensors[f"blk.{i}.ffn_down.weight"],
                           state[f"layers.{i}.mlp.down_proj.weight"])
    modelfile = (exported / "export" / "gguf" / "Modelfile").read_text()
    assert "FROM ./my-llm-f32.gguf" in modelfile and 'PARAMETER stop "<|endoftext|>"' in modelfile


def test_the_permutation_gives_llama_cpp_its_adjacent_pairs() -> None:
    """Row j of a head's rotate-half layout pairs with j + D/2; llama.cpp pairs 2i with 2i+1."""
    from exporters.gguf import permute_for_llama_cpp, unpermute_from_llama_cpp

    heads, head_dim = 3, 8
    rows = torch.arange(heads * head_dim, dtype=torch.float32)[:, None].repeat(1, 4)
    permuted = permute_for_llama_cpp(rows, heads)[:, 0].long().tolist()
    assert permuted[:head_dim] == [0, 4, 1, 5, 2, 6, 3, 7]
    assert torch.equal(unpermute_from_llama_cpp(permute_for_llama_cpp(rows, heads), heads), rows)


def test_gguf_refuses_a_tokenizer_llama_cpp_would_get_wrong() -> None:
    from tokenizers import models, pre_tokenizers

    from errors import DeploymentError
    from exporters.gguf import require_byte_level_bpe

    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    with pytest.raises(DeploymentError, match="needs a byte-level BPE tokenizer"):
        require_byte_level_bpe(wordpiece)


@pytest.mark.slow
@pytest.mark.parametrize("file_type", ["f16", "q8_0"])
def test_smaller_gguf_files(project: Path, file_type: str) -> None:
    pytest.importorskip("gguf")
    result = deploy(project, "export", "--format", "gguf", "--gguf-type", file_type)
    assert result.returncode == 0, result.stderr
    f32 = (project / "export" / "gguf" / "my-llm-f32.gguf").stat().st_size
    smaller = (project / "export" / "gguf" / f"my-llm-{file_type}.gguf").stat().st_size
    assert smaller < {"f16": 0.6, "q8_0": 0.45}[file_type] * f32


# ---- 3. the Hub (a fake one, on this machine) ----


def hub_env(hub: FakeHub, token: str | None = TOKEN) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, **({"HF_TOKEN": token} if token else {})}


def every_file(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_deploy_uploads_exactly_the_export_folder(project: Path, fake_hub: FakeHub) -> None:
    result = deploy(project, "deploy", "--repo-id", "me/my-llm", env=hub_env(fake_hub))
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake_hub.files == every_file(project / "export" / "hf")  # all, byte for byte
    assert fake_hub.created() == {"name": "my-llm", "organization": "me",
                                  "visibility": "private", "type": "model"}
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in fake_hub.requests)
    assert "6 files" in result.stdout and "model.safetensors" in result.stdout
    # The token went to the Hub only: not to the terminal, nor into any file of the project.
    assert TOKEN not in result.stdout + result.stderr
    assert not any(TOKEN.encode() in content for content in every_file(project).values())


@pytest.mark.slow
def test_deploy_public_when_asked(project: Path, fake_hub: FakeHub) -> None:
    result = deploy(project, "deploy", "--repo-id", "me/my-llm", "--private", "false",
                    env=hub_env(fake_hub))
    assert result.returncode == 0, result.stderr
    assert fake_hub.created()["visibility"] == "public"


@pytest.mark.parametrize(("status", "says"), [
    (401, "rejected your token"),
    pytest.param(403, "may not write to someone/my-llm", marks=pytest.mark.slow)])
def test_deploy_refused_by_the_hub(project: Path, fake_hub: FakeHub, status: int,
                                   says: str) -> None:
    fake_hub.fail["/api/repos/create"] = [status] * 10
    result = deploy(project, "deploy", "--repo-id", "someone/my-llm", env=hub_env(fake_hub))
    assert result.returncode == 1
    assert says in result.stderr and "Suggestion:" in result.stderr
    assert "Traceback" not in result.stderr and TOKEN not in result.stdout + result.stderr
    assert not fake_hub.files


def test_deploy_without_a_token_sends_nothing(project: Path, fake_hub: FakeHub) -> None:
    result = deploy(project, "deploy", "--repo-id", "me/my-llm", env=hub_env(fake_hub, None))
    assert result.returncode == 1
    assert "no Hugging Face token" in result.stderr and "hf auth login" in result.stderr
    assert fake_hub.requests == []


def test_passing_failures_are_retried(exported: Path, fake_hub: FakeHub,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from exporters import hub

    monkeypatch.setattr(hub, "RETRY_WAITS", (0.01, 0.01, 0.01))
    fake_hub.fail["/api/repos/create"] = [503, 502]
    folder = exported / "export" / "hf"
    files = sorted(p for p in folder.iterdir())
    plan = hub.UploadPlan(folder, "me/my-llm", True, files, fake_hub.url, TOKEN)
    assert hub.upload(plan).endswith("/me/my-llm")
    assert sum(r["path"].startswith("/api/repos/create") for r in fake_hub.requests) == 3
    assert fake_hub.files == every_file(folder)
    assert TOKEN not in repr(plan)


def test_no_network_is_a_clear_error(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from errors import DeploymentError
    from exporters import hub

    monkeypatch.setattr(hub, "RETRY_WAITS", (0.01,))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    folder = exported / "export" / "hf"
    plan = hub.UploadPlan(folder, "me/my-llm", True, sorted(folder.iterdir()), closed, TOKEN)
    with pytest.raises(DeploymentError, match="could not reach the Hub") as caught:
        hub.upload(plan)
    assert "internet connection" in caught.value.suggestion


# ---- 4. Replicate ----


@pytest.mark.slow
def test_the_replicate_predictor_answers_over_http(project: Path) -> None:
    pytest.importorskip("cog")
    pytest.importorskip("transformers")
    result = deploy(project, "deploy", "--target", "replicate")
    target = project / "deploy" / "replicate"
    assert {"cog.yaml", "predict.py", "model"} <= {p.name for p in target.iterdir()}
    assert 'run: "predict.py:Runner"' in (target / "cog.yaml").read_text()
    if shutil.which("cog") is None or shutil.which("docker") is None:  # never a pretend push
        assert result.returncode == 1 and "nothing was pushed" in result.stderr
        assert "cog push r8.im/" in result.stdout

    with serve_cog(target, free_port()) as url:
        answer = http_json(f"{url}/predictions", {"input": {
            "prompt": PROMPT, "max_new_tokens": NEW_TOKENS, "temperature": 0}})
    assert answer["status"] == "succeeded", answer
    full = transformers_greedy(project / "export" / "hf")
    assert full.startswith(PROMPT)  # and equals `make generate`'s text (the test above)
    assert "".join(answer["output"]) == full.removeprefix(PROMPT)


# ---- 5. bad inputs: one clear error each, and nothing of the user's changed ----


def break_checkpoints(folder: Path) -> None:
    for path in (folder / "checkpoints").glob("*.pt"):
        path.write_bytes(path.read_bytes()[:1000])


def other_tokenizer(folder: Path) -> None:
    for path in (folder / "checkpoints").glob("tokenizer-*.json"):
        path.unlink()
    tokenizer = folder / "tokenizer" / "tokenizer.json"
    data = json.loads(tokenizer.read_text())
    data["model"]["merges"] = data["model"]["merges"][:-1]
    tokenizer.write_text(json.dumps(data))


def broken_export(folder: Path) -> None:
    weights = folder / "export" / "hf" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])


BAD = {
    "no checkpoint yet": (lambda f: shutil.rmtree(f / "checkpoints"), ["export"],
                          "no usable checkpoint"),
    "every checkpoint corrupt": (break_checkpoints, ["export"], "damaged"),
    "a checkpoint of another tokenizer": (other_tokenizer, ["export"],
                                          "trained with a different tokenizer"),
    "an unknown GGUF type": (None, ["export", "--format", "gguf", "--gguf-type", "q4_k"],
                             "deployment.gguf_type is 'q4_k'"),
    "an unknown dtype": (None, ["export", "--dtype", "int8"], "deployment.dtype"),
    "an unknown format": (None, ["export", "--format", "onnx"], "invalid choice"),
    "a bad repo id": (None, ["deploy", "--repo-id", "not a repo"], "deployment.repo_id"),
    "no repo id": (None, ["deploy"], "no Hub repository given"),
    "an export that does not load": (broken_export, ["deploy", "--repo-id", "me/x"],
                                     "does not load"),
    "no export yet": (lambda f: shutil.rmtree(f / "export"), ["deploy", "--repo-id", "me/x"],
                      "no Hugging Face export"),
    "replicate without an export": (lambda f: shutil.rmtree(f / "export"),
                                    ["deploy", "--target", "replicate"],
                                    "no Hugging Face export"),
}


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file() and p.name != ".llm.lock"}


@pytest.mark.parametrize("case", first_everyday(list(BAD)))
def test_bad_input_is_one_clear_error(project: Path, case: str) -> None:
    change, args, says = BAD[case]
    if change is not None:
        change(project)
    before = snapshot(project)
    result = deploy(project, *args, env={"HF_TOKEN": TOKEN, "HF_ENDPOINT": "http://127.0.0.1:9"})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert output.count("Error:") == 1 and "Suggestion:" in result.stderr, output
    assert says in result.stderr, output
    assert "Traceback" not in output and "unexpected" not in output, output
    assert snapshot(project) == before


# ---- 6. llama.cpp itself (slow; needs llama-cpp-python, which builds from source) ----


@pytest.mark.slow
@pytest.mark.parametrize("file_type", ["f32", "f16", "q8_0"])
def test_llama_cpp_generates_our_greedy_tokens(project: Path, file_type: str) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from config import GenerationConfig
    from runtime.sampling import generate_tokens

    result = deploy(project, "export", "--format", "gguf", "--gguf-type", file_type)
    assert result.returncode == 0, result.stderr
    model, tokenizer = ours(project)
    llm = llama_cpp.Llama(str(project / "export" / "gguf" / f"my-llm-{file_type}.gguf"),
                          n_ctx=model.config.max_length, verbose=False, logits_all=False)
    for text in STRINGS:  # ASCII, unicode, whitespace runs, the end-of-text token
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == \
            tokenizer.encode(text, add_special_tokens=False).ids, text
    prompt = tokenizer.encode(PROMPT, add_special_tokens=False).ids
    n = model.config.max_length - len(prompt)
    expected = list(generate_tokens(model, prompt, GenerationConfig(
        max_new_tokens=n, temperature=0.0, repetition_penalty=1.0)))
    theirs = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                              reset=True):
        theirs.append(token)
        if len(theirs) == len(expected):
            break
    pairs = enumerate(zip(theirs, expected, strict=False))
    agree = next((i for i, (a, b) in pairs if a != b), len(expected))
    print(f"{file_type}: the first {agree} of {len(expected)} greedy tokens agree")
    if file_type == "f32":
        assert agree >= min(32, len(expected))
