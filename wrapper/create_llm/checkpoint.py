"""`create-llm NAME --from MODEL`: the published checkpoint's config.json, read with the
standard library before anything is written.

    config = read_config("HuggingFaceTB/SmolLM2-135M")   # or the path of a downloaded folder
    answers = shape_answers(config)        # custom_layers, custom_heads, ... for cookiecutter
    describe_checkpoint(config)            # the summary's one-line description

The project is rendered with the checkpoint's shape (preset custom, gpt), and its own import
(`python -m importers.hf --from ...`, what `make import` runs) then checks every tensor, copies
the weights and the tokenizer, and writes the exact shape into llm.config.js. This module only
refuses early what cannot work (not a checkpoint, another architecture, a Hub that cannot be
reached), so a bad --from leaves nothing behind.

A Hub id is read from the Hugging Face cache when it is there (so an offline machine that has
it works), else from the Hub (HF_ENDPOINT, default https://huggingface.co; a token from HF_TOKEN
or `hf auth login` for gated models).
"""

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from create_llm.errors import CreateLLMError

# The classes the project's models/hf_layout.py imports (FAMILIES there; a test checks they are
# the same): Llama, and the models that are Llama's math under another name.
SUPPORTED = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
# The context the project's import writes when the checkpoint's is longer (importers/hf.py).
DEFAULT_CONTEXT = 2048
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
TIMEOUT_SECONDS = 15
EXAMPLE = "HuggingFaceTB/SmolLM2-135M"


def is_hub_id(source: str) -> bool:
    """Whether `source` names a Hub repository rather than a local folder."""
    return not Path(source).expanduser().exists() and bool(HUB_ID.fullmatch(source))


def import_source(source: str) -> str:
    """What the project's import is given: a local folder as an absolute path (the import runs
    inside the project folder), a Hub id as it is."""
    return source if is_hub_id(source) else str(Path(source).expanduser().resolve())


def elsewhere(repo_id: str) -> str:
    local = repo_id.split("/")[-1]
    return (f"Download the folder elsewhere (`hf download {repo_id} --local-dir {local}` on a "
            f"machine with a network) and pass its path: --from ./{local}")


def read_config(source: str) -> dict[str, Any]:
    """config.json of the checkpoint `source` names, checked to be one the import supports."""
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise CreateLLMError(
                f"--from {source}: there is no config.json there, so it is not a Hugging Face "
                "checkpoint folder.",
                "Pass the folder that holds config.json, model.safetensors and tokenizer.json, "
                f"or a Hub id such as {EXAMPLE}.")
        text = (path / "config.json").read_text(encoding="utf-8", errors="replace")
    elif HUB_ID.fullmatch(source):
        text = hub_config(source)
    else:
        raise CreateLLMError(f"--from {source}: there is no such folder, and it is not a Hub id "
                             "(owner/name).",
                             f"Pass a downloaded checkpoint's folder or a Hub id such as "
                             f"{EXAMPLE}.")
    try:
        config = json.loads(text)
    except ValueError:
        raise CreateLLMError(f"--from {source}: its config.json is not valid JSON.",
                             "Download the checkpoint again.") from None
    names = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(names, list) or len(names) != 1 or names[0] not in SUPPORTED:
        raise CreateLLMError(
            f"--from {source} is a {names or 'model of unknown architecture'}; create-llm "
            f"imports {', '.join(SUPPORTED)}.",
            f"Start from a Llama-family checkpoint, e.g. --from {EXAMPLE}.")
    return config


def cached_config(repo_id: str) -> str | None:
    """config.json of `repo_id` in the Hugging Face cache (its main revision), if it is there."""
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    cache = Path(os.environ.get("HF_HUB_CACHE") or home / "hub")
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    try:
        revision = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
        return (repo / "snapshots" / revision / "config.json").read_text(encoding="utf-8")
    except OSError:
        return None


def hub_token() -> str | None:
    """HF_TOKEN, else the token `hf auth login` saved."""
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    try:
        return Path(os.environ.get("HF_TOKEN_PATH") or home / "token").read_text().strip() or None
    except OSError:
        return None


def hub_config(repo_id: str) -> str:
    """config.json of a Hub repository: from the cache, else downloaded (not kept)."""
    cached = cached_config(repo_id)
    if cached is not None:
        return cached
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise CreateLLMError(f"{repo_id} is not in the Hugging Face cache, and HF_HUB_OFFLINE "
                             "is set.", elsewhere(repo_id) + ".")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    request = urllib.request.Request(f"{endpoint}/{repo_id}/resolve/main/config.json")
    token = hub_token()
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        if error.code in (401, 403, 404):
            raise CreateLLMError(
                f"{repo_id} was not found on the Hugging Face Hub (HTTP {error.code}: it does "
                "not exist, or it is private or gated).",
                "Check the id (owner/name, as in its huggingface.co address); for a gated or "
                "private model accept its terms and log in (`hf auth login`, or set HF_TOKEN)."
            ) from None
        raise CreateLLMError(f"the Hugging Face Hub answered HTTP {error.code} for {repo_id}.",
                             elsewhere(repo_id) + ".") from None
    except (urllib.error.URLError, OSError) as error:  # no network, DNS, refused, timeout
        reason = getattr(error, "reason", error)
        raise CreateLLMError(f"cannot reach the Hugging Face Hub to read {repo_id} ({reason}).",
                             elsewhere(repo_id) + ".") from None


def shape(config: dict[str, Any]) -> dict[str, int]:
    """The model's sizes from config.json (CreateLLMError naming a missing one)."""
    keys = {"layers": "num_hidden_layers", "heads": "num_attention_heads", "dim": "hidden_size",
            "mlp_dim": "intermediate_size", "vocab_size": "vocab_size"}
    try:
        sizes = {ours: int(config[theirs]) for ours, theirs in keys.items()}
    except (KeyError, TypeError, ValueError) as error:
        raise CreateLLMError(f"the checkpoint's config.json has no whole number {error}.",
                             "Download the checkpoint again.") from None
    sizes["kv_heads"] = int(config.get("num_key_value_heads") or sizes["heads"])
    sizes["context"] = int(config.get("max_position_embeddings") or DEFAULT_CONTEXT)
    sizes["max_length"] = min(sizes["context"], DEFAULT_CONTEXT)
    return sizes


def shape_answers(config: dict[str, Any]) -> dict[str, Any]:
    """The cookiecutter answers of a custom gpt project with the checkpoint's shape (the
    import writes what the custom answers cannot say: kv_heads, mlp_dim, rope_theta...)."""
    s = shape(config)
    return {"preset": "custom", "model": "gpt", "custom_layers": s["layers"],
            "custom_heads": s["heads"], "custom_dim": s["dim"],
            "custom_vocab_size": s["vocab_size"], "custom_max_length": s["max_length"]}


def describe_checkpoint(config: dict[str, Any], count: int) -> str:
    """'LlamaForCausalLM, 134.5M parameters (30 layers, width 576, 9 heads / 3 key-value
    heads, context 2,048 of its 8,192, vocabulary 49,152)'."""
    s = shape(config)
    context = f"context {s['max_length']:,}" + (
        f" of its {s['context']:,}" if s["context"] > s["max_length"] else "")
    return (f"{config['architectures'][0]}, {count / 1e6:.1f}M parameters ({s['layers']} layers, "
            f"width {s['dim']}, {s['heads']} heads / {s['kv_heads']} key-value heads, {context}, "
            f"vocabulary {s['vocab_size']:,})")


def parameter_count(config: dict[str, Any], presets: Any) -> int:
    """Parameters of the checkpoint's model: the template's gpt count (tied embeddings) plus an
    untied output matrix and Qwen2's q/k/v biases."""
    s = shape(config)
    count = presets.parameter_count({**s, "architecture": "gpt"})
    if not config.get("tie_word_embeddings", False):
        count += s["vocab_size"] * s["dim"]
    if config["architectures"][0] == "Qwen2ForCausalLM":
        count += s["layers"] * (s["dim"] + 2 * s["kv_heads"] * (s["dim"] // s["heads"]))
    return count


def import_command(project: Path, source: str) -> list[str]:
    """The project's own import, run by its .venv's Python (what `make import` runs)."""
    from create_llm.install import venv_python

    return [str(venv_python(project / ".venv")), "-m", "importers.hf", "--from",
            import_source(source)]


def import_into(project: Path, source: str, report: Any = print) -> None:
    """Run the project's import in the project folder, its output shown as it goes.
    CreateLLMError (the project stays, complete) when it fails."""
    import shlex
    import subprocess

    report(f"Importing {source} into {project.name}/ (the project's `make import`)")
    result = subprocess.run(import_command(project, source), cwd=project, check=False)
    if result.returncode != 0:
        again = f'make import ARGS="--from {shlex.quote(import_source(source))}"'
        raise CreateLLMError(
            f"the project {project.name} was created, but importing {source} into it failed "
            "(its error is above).",
            f"Fix that, then import again: `cd {shlex.quote(str(project))} && {again}`.")
