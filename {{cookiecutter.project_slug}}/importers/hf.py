"""Start from a published model: a Hugging Face checkpoint becomes this project's step 0.

    make import ARGS="--from HuggingFaceTB/SmolLM2-135M"     # a Hub id (needs the network)
    make import ARGS="--from ~/models/SmolLM2-135M"          # a folder you downloaded
    python -m importers.hf --from PATH --dtype bf16 --max-length 4096

The folder is a Hugging Face checkpoint of the Llama family (models/hf_layout.py lists them):
config.json, model.safetensors (or shards and model.safetensors.index.json) and tokenizer.json,
with tokenizer_config.json. The import writes

    checkpoints/step_000000.pt + .json   the weights as step 0, with no optimizer state: make
    checkpoints/best.pt + best.json      eval, generate, chat, compare and export use them, and
                                         make train continues from them (best.pt is the same
                                         file, hard-linked where the file system allows)
    tokenizer/tokenizer.json             the checkpoint's own tokenizer, byte for byte (`make
                                         tokenizer` keeps it and says why)
    tokenizer/chat_template.jinja        its chat template, if it has one (make chat, finetune)
    llm.config.js                        model: the checkpoint's shape (preset 'custom');
                                         tokenizer: its type, size and special tokens; data.stride
                                         within the context. Every comment stays.

and, on bad input, nothing: every check (config.json, each tensor's name, shape and dtype in the
files' headers, the tokenizer against the embedding, the new llm.config.js) comes before the
first write, and the weights are read into memory before anything is replaced. The tensors are
streamed from the safetensors files one at a time (importers/weights.py); the peak memory is
printed at the end. It holds the project's write lock, like make train.
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import dataclasses
import functools
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from config import (
    Config,
    ModelConfig,
    build_config,
    load_config,
    parse_config_text,
    raise_argument_error,
)
from errors import ConfigurationError, DataError, run_cli
from importers.project_config import set_values
from importers.source import checkpoint_folder
from importers.tokenizer_files import ImportedTokenizer, read_json, read_tokenizer
from importers.weights import check_weights, find_weights, read_state_dict
from models import hf_layout
from models.build import build_model
from project_lock import project_lock
from runtime import checkpoints
from tokenizer.load import tokenizer_hash
from tokenizer.train import training_record_path

# The context written to llm.config.js when --max-length is not given: the checkpoint's own,
# at most this. It is the length of every training window too, and a longer one makes each step
# slower and bigger (raise it with --max-length, up to the checkpoint's max_position_embeddings).
DEFAULT_CONTEXT = 2048
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# A published model has learned already: continued pretraining takes small steps (a tenth of
# a from-scratch rate, a short warmup) on small batches of long windows, and instruction tuning
# trains LoRA adapters (a few million numbers instead of every weight; models/lora.py), which is
# what fits a laptop. Change them in llm.config.js like any other setting.
CONTINUED_TRAINING = {"batch_size": 4, "gradient_accumulation": 4, "max_steps": 500,
                      "learning_rate": 1e-4, "min_lr": 1e-5, "warmup_steps": 20,
                      "eval_interval": 100, "eval_batches": 10}
TUNING = {"batch_size": 4, "gradient_accumulation": 4, "learning_rate": 2e-4, "min_lr": 2e-5,
          "lora_rank": 8, "lora_alpha": 16}
STEP_FILE, BEST_FILE = "step_000000.pt", "best.pt"
# Comments of the llm.config.js keys an import may have to add (a new project lacks them).
NEW_KEY_COMMENTS = {
    "qkv_bias": "biases on the q/k/v projections (Qwen2's), as in the imported checkpoint",
    "rope_scaling": "Llama 3's scaled RoPE frequencies, as in the imported checkpoint",
    "rope_scaling_factor": "rope_scaling 'llama3': how far long wavelengths are stretched",
    "rope_low_freq_factor": "rope_scaling 'llama3' (from the imported checkpoint)",
    "rope_high_freq_factor": "rope_scaling 'llama3' (from the imported checkpoint)",
    "rope_original_max_length": "rope_scaling 'llama3': the context it was first trained with",
}


@dataclasses.dataclass
class Plan:
    """Everything an import will write, checked and in memory before the first write."""

    source: str  # the Hub id, or the folder's absolute path
    folder: Path
    architecture: str  # config.json's class, e.g. LlamaForCausalLM
    model_config: ModelConfig
    tokenizer: ImportedTokenizer
    state: dict[str, torch.Tensor]
    config_text: str  # the new llm.config.js
    config: Config  # ... as the project will read it


# ---- checking ----


def project_changes(cfg: Config, mc: ModelConfig, tok: ImportedTokenizer,
                    written: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The llm.config.js values an import sets. `written`: the file's model section as it is
    (keys an earlier import added are kept in step)."""
    model = {key: getattr(mc, key) for key in (
        "architecture", "preset", "layers", "heads", "kv_heads", "dim", "mlp_dim", "max_length",
        "dropout", "rope_theta", "norm_eps", "tie_embeddings")}
    defaults = ModelConfig()
    for key in NEW_KEY_COMMENTS:  # written when not the default, or when the file has them
        if getattr(mc, key) != getattr(defaults, key) or key in written:
            model[key] = getattr(mc, key)
    stride = cfg.data.stride
    if stride > mc.max_length or stride == cfg.model.max_length:  # it was "the whole context"
        stride = mc.max_length
    return {"model": model,
            "tokenizer": {"type": tok.type, "vocab_size": tok.vocab_size,
                          "special_tokens": tok.special_tokens},
            "data": {"stride": stride},
            "training": CONTINUED_TRAINING, "finetune": TUNING}


def check_project(cfg: Config, tok: ImportedTokenizer) -> None:
    """Refuse to replace what an import cannot give back: a training run, or a tokenizer that
    `make tokenizer` did not write (an earlier import's checkpoints and tokenizer are fine)."""
    folder = Path(cfg.checkpoints.dir)
    if checkpoints.has_checkpoints(folder):
        found = [path for _, path in checkpoints.list_step_checkpoints(folder)]
        if (folder / "best.pt").exists() or (folder / "best.json").exists():
            found.append(folder / "best.pt")  # its sidecar, best.json, says what it is
        sidecars = [checkpoints.read_sidecar(path) or {} for path in found]
        # Only an earlier import's step 0 can be replaced: it comes back from its source.
        if not all(s.get("step") == 0 and s.get("imported_from") for s in sidecars):
            raise DataError(f"{folder}/ already holds a training run, which an import would "
                            "replace", f"move it away first (`mv {folder} {folder}.before-import`"
                            "), or import into a new project: `create-llm NAME --from ...`")
    path = Path(cfg.tokenizer.path)
    if not path.is_file() or path.read_bytes() == tok.data:
        return
    record = read_json_quietly(training_record_path(path))
    if record.get("tokenizer_hash") != tokenizer_hash(path):  # the user's own tokenizer
        raise DataError(f"{path} is a tokenizer that `make tokenizer` did not write (your own?), "
                        "and the import would replace it with the checkpoint's",
                        f"move it away first (`mv {path} {path}.mine`), then run the import "
                        "again")


def read_json_quietly(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def plan_import(cfg: Config, source: str, dtype: torch.dtype, max_length: int | None) -> Plan:
    """Check everything and read the weights; nothing is written."""
    folder = checkpoint_folder(source)
    if not (folder / "config.json").is_file():
        raise DataError(f"{folder} has no config.json: it is not a Hugging Face checkpoint",
                        "pass the folder that holds config.json, model.safetensors and "
                        "tokenizer.json")
    hf = read_json(folder / "config.json")
    architecture, _ = hf_layout.hf_family(hf)
    context = max_length or min(hf_layout.hf_context(hf), DEFAULT_CONTEXT)
    mc = hf_layout.model_config_from_hf(hf, context)
    tok = read_tokenizer(folder, hf, mc.vocab_size)
    entries = find_weights(folder)
    check_weights(entries, hf_layout.expected_shapes(mc))

    text = Path(cfg.path).read_text(encoding="utf-8")
    written = parse_config_text(text, cfg.path).get("model", {})
    new_text = set_values(text, project_changes(cfg, mc, tok, written), NEW_KEY_COMMENTS)
    new_cfg = build_config(parse_config_text(new_text, cfg.path), new_text, cfg.path)
    check_project(cfg, tok)

    with torch.device("meta"):  # the names only: no memory
        names = hf_layout.hf_names(build_model(mc))
    print(f"Reading {len(names)} tensors from {folder} ({architecture})...")
    state = read_state_dict(entries, names, dtype, mc.tie_embeddings)
    # What the checkpoint records: a Hub id as given, a folder as its absolute path.
    origin = str(folder) if Path(source).expanduser().exists() else source
    return Plan(origin, folder, architecture, mc, tok, state, new_text, new_cfg)


# ---- writing ----


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file through a temporary one: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = checkpoints.temp_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_checkpoints(folder: Path, state: dict[str, Any], info: dict[str, Any]) -> list[Path]:
    """step_000000.pt and best.pt (one file twice: a hard link, or a copy), with sidecars."""
    step, best = folder / STEP_FILE, folder / BEST_FILE
    sidecar = checkpoints.save_checkpoint(step, state, info)
    tmp = checkpoints.temp_path(best)
    try:
        try:
            os.link(step, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(step, tmp)
            checkpoints.fsync_path(tmp)
        os.replace(tmp, best)
    finally:
        tmp.unlink(missing_ok=True)
    checkpoints.write_sidecar(best, {**sidecar, "file": best.name})
    return [step, best]


def write_project(plan: Plan, cfg: Config) -> None:
    """Write the tokenizer, the checkpoints, and llm.config.js last (what points at them)."""
    tok_path = Path(cfg.tokenizer.path)
    write_atomically(tok_path, plan.tokenizer.data)
    # embedding_rows: published models often pad the embedding past the tokenizer (Qwen2.5:
    # 151,936 rows for 151,665 tokens); training builds the model with this many (training/run.py).
    record = {"imported_from": plan.source, "tokenizer_hash": tokenizer_hash(tok_path),
              "vocab_size": plan.tokenizer.vocab_size,
              "embedding_rows": plan.model_config.vocab_size}
    write_atomically(training_record_path(tok_path), (json.dumps(record, indent=2) + "\n").encode())
    template = tok_path.with_name("chat_template.jinja")
    if plan.tokenizer.chat_template is not None:
        write_atomically(template, plan.tokenizer.chat_template.encode("utf-8"))

    state = {"model": plan.state, "model_config": dataclasses.asdict(plan.model_config),
             "config": plan.config.to_dict(), "tokenizer_hash": record["tokenizer_hash"],
             "step": 0, "tokens_seen": 0, "metrics": {}, "imported_from": plan.source}
    info = {"step": 0, "tokens_seen": 0, "val_loss": None, "val_bpb": None, "preset": "custom",
            "tokenizer_hash": record["tokenizer_hash"], "imported_from": plan.source}
    write_checkpoints(Path(plan.config.checkpoints.dir), state, info)
    write_atomically(Path(cfg.path), plan.config_text.encode("utf-8"))


# ---- the command ----


def megabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes < 1e8 else f"{n_bytes / 1e6:.0f} MB"


def peak_memory_mb() -> float:
    """This process's peak resident memory in MB (getrusage: kilobytes on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e6


def report(plan: Plan, seconds: float, baseline: float) -> None:
    mc, tok = plan.model_config, plan.tokenizer
    params = sum(t.numel() for name, t in plan.state.items()
                 if not (name == hf_layout.UNTIED_HEAD and mc.tie_embeddings))
    dtype = next(iter(plan.state.values())).dtype
    size = (Path(plan.config.checkpoints.dir) / STEP_FILE).stat().st_size
    tied = "tied" if mc.tie_embeddings else "untied"
    print(f"Imported {plan.source} ({plan.architecture}): {params / 1e6:.1f}M parameters, "
          f"{mc.layers} layers, width {mc.dim}, {mc.heads} heads / {mc.kv_heads} kv heads, "
          f"vocabulary {mc.vocab_size} ({tied} embeddings), {str(dtype).removeprefix('torch.')}")
    checkpoints_dir = plan.config.checkpoints.dir
    print(f"  {checkpoints_dir}/{STEP_FILE} and {BEST_FILE}   step 0, {megabytes(size)}")
    print(f"  {plan.config.tokenizer.path}   its tokenizer: {tok.type}, {tok.vocab_size} tokens, "
          f"end of text {tok.special_tokens[0]}")
    if tok.chat_template is not None:
        print(f"  {Path(plan.config.tokenizer.path).with_name('chat_template.jinja')}   its "
              "chat template")
    print(f"  {plan.config.path}   model and tokenizer sections (preset 'custom', context "
          f"{mc.max_length} tokens)")
    print(f"Done in {seconds:.1f}s; peak memory {peak_memory_mb():.0f} MB ({baseline:.0f} MB "
          f"of it before reading: Python, torch; the weights are {megabytes(size)}).")
    print("Next: make generate (try it), make data (your text in data/raw, with its tokenizer), "
          "make train (continue training it)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m importers.hf",
        description="Start from a published model: a Hugging Face checkpoint (a folder, or a Hub "
                    "id) becomes this project's step 0, tokenizer and model config.")
    parser.error = functools.partial(raise_argument_error, parser)  # type: ignore[method-assign]
    parser.add_argument("--from", dest="source", required=True, metavar="PATH_OR_HUB_ID",
                        help="a folder with config.json, model.safetensors and tokenizer.json, "
                             "or a Hub id such as HuggingFaceTB/SmolLM2-135M")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp32",
                        help="weights in the checkpoint: fp32 (what training uses; default) or "
                             "bf16 (half the memory and disk; exact for bf16 checkpoints)")
    parser.add_argument("--max-length", type=int, default=None, metavar="N",
                        help=f"context in tokens (default: the checkpoint's, at most "
                             f"{DEFAULT_CONTEXT})")
    parser.add_argument("--config", default="llm.config.js",
                        help="path of the config file (default: llm.config.js)")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks (or set CREATE_LLM_DEBUG=1)")
    args = parser.parse_args(argv)
    if args.max_length is not None and args.max_length < 8:
        raise ConfigurationError(f"--max-length {args.max_length} is too short",
                                 f"use at least 8 tokens, e.g. --max-length {DEFAULT_CONTEXT}")
    cfg = load_config(args.config)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))  # reading, not computing
    started, baseline = time.perf_counter(), peak_memory_mb()
    with project_lock("make import", Path(cfg.path).parent):
        plan = plan_import(cfg, args.source, DTYPES[args.dtype], args.max_length)
        write_project(plan, cfg)
    report(plan, time.perf_counter() - started, baseline)


if __name__ == "__main__":
    run_cli(main)
