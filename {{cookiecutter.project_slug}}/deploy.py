"""Use your model elsewhere: export it for transformers or llama.cpp, publish it on the Hugging
Face Hub, package it for Replicate.

    python deploy.py export                          # make export -> export/hf/ (transformers)
    python deploy.py export --dtype bf16             # half-size weights (fp32 is exact)
    python deploy.py export --format gguf            # export/gguf/ (llama.cpp, Ollama, LM Studio)
    python deploy.py export --format gguf --gguf-type q8_0
    python deploy.py deploy --repo-id you/my-llm     # make deploy -> the Hugging Face Hub
    python deploy.py deploy --target replicate       # deploy/replicate/ (cog.yaml + predictor)
    make export ARGS="--format gguf"
    make deploy ARGS="--target replicate"

Defaults come from the `deployment` section of llm.config.js; the checkpoint is best.pt, else
the newest step checkpoint, with the exact tokenizer it was trained with. `deploy` uploads the
export folder as it is (run `make export` first); it checks everything it can before sending a
byte, and never prints or stores your token.
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer

from config import Config, GenerationConfig, add_config_arguments, config_from_args
from data.splits import read_meta
from errors import DataError, DeploymentError, run_cli
from exporters import card, hf, hub, replicate
from project_lock import project_lock
from runtime.checkpoints import load_trained_model
from runtime.objectives import objective_for
from tokenizer.load import tokenizer_of

SAMPLE_TOKENS = 40  # the greedy sample on the model card


# ---- the trained model, as every export needs it ----


@dataclasses.dataclass
class Trained:
    model: torch.nn.Module
    info: dict
    tokenizer: Tokenizer
    special: hf.SpecialTokens


def load_trained(cfg: Config) -> Trained:
    """The checkpoint of deployment.checkpoint on the CPU, and the tokenizer it was trained
    with (exports are written from CPU tensors, the same on every machine)."""
    model, info = load_trained_model(cfg.deployment.checkpoint, cfg.checkpoints.dir, "cpu")
    tokenizer, used = tokenizer_of(info["path"], info["tokenizer_hash"], cfg.tokenizer.path)
    if tokenizer.get_vocab_size() != model.config.vocab_size:
        raise DeploymentError(
            f"{info['path']} has a vocabulary of {model.config.vocab_size} tokens but the "
            f"tokenizer {used} has {tokenizer.get_vocab_size()}",
            "export the checkpoint from the project that trained it",
        )
    special = hf.special_tokens_of(tokenizer, cfg.tokenizer.special_tokens)
    return Trained(model, info, tokenizer, special)


def greedy_sample(cfg: Config, trained: Trained, prompt: str,
                  max_new_tokens: int = SAMPLE_TOKENS) -> str:
    """What `make generate ARGS="--temperature 0 --repetition-penalty 1"` makes of the prompt:
    gpt's continuation of it; bert's, t5's: the prompt with its blanks filled in."""
    objective = objective_for(cfg, trained.model.config, trained.tokenizer)
    settings = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0,
                                repetition_penalty=1.0)
    return objective.sample(trained.model, prompt, settings, None)


def data_meta(cfg: Config) -> dict | None:
    try:
        return read_meta(cfg.data.processed_dir)
    except DataError:  # the card says "not recorded"; the export itself does not need it
        return None


def size_of(paths: list[Path]) -> str:
    total = sum(p.stat().st_size for p in paths)
    return f"{total / 2**20:.1f} MB" if total >= 2**20 else f"{total / 2**10:.1f} KB"


# ---- make export ----


def export_hf(cfg: Config, trained: Trained) -> Path:
    d, started = cfg.deployment, time.perf_counter()
    folder = Path(d.export_dir) / "hf"
    prompt = cfg.generation.prompt
    text = card.model_card(cfg, trained.info, trained.model.num_parameters(),
                           (prompt, greedy_sample(cfg, trained, prompt)), data_meta(cfg),
                           name=Path(cfg.path).resolve().parent.name, repo_id=d.repo_id,
                           dtype=d.dtype)
    files = hf.write_hf_folder(trained.model, trained.tokenizer, trained.special, cfg.generation,
                               folder, dtype=d.dtype, card=text)
    print(f"Exported {trained.info['path']} (step {trained.info.get('step', '?')}) to {folder}/ "
          f"in {time.perf_counter() - started:.1f}s: {size_of(files)}, {d.dtype}")
    for path in files:
        print(f"  {path.name:<24} {size_of([path]):>10}")
    auto = card.AUTO_CLASSES[trained.model.config.architecture]
    print(f"Load it: {auto}.from_pretrained(\"{folder}\")  (see {folder}/README.md)")
    return folder


def export_gguf(cfg: Config, trained: Trained) -> Path:
    architecture = trained.model.config.architecture
    if architecture != "gpt":
        why = ("llama.cpp runs BERT as an embedding model only, without the masked-LM head "
               "that fills in [MASK]s" if architecture == "bert" else
               "llama.cpp's T5 needs a SentencePiece tokenizer model, which a tokenizer trained "
               "here is not")
        raise DeploymentError(
            f"GGUF export is for gpt models, and this one is {architecture}: {why}",
            "export for transformers instead: `make export` (export/hf/ loads in transformers "
            f"as {card.AUTO_CLASSES[architecture]})")
    from exporters import gguf  # gpt projects only

    d, started = cfg.deployment, time.perf_counter()
    gguf.require_byte_level_bpe(trained.tokenizer)
    folder = Path(d.export_dir) / "gguf"
    path = gguf.write_gguf(trained.model, trained.tokenizer, trained.special, folder,
                           name=Path(cfg.path).resolve().parent.name, file_type=d.gguf_type)
    modelfile = gguf.write_modelfile(folder, path.name, cfg.generation, trained.special.eos,
                                     trained.model.config.max_length)
    print(f"Exported {trained.info['path']} (step {trained.info.get('step', '?')}) to {path} in "
          f"{time.perf_counter() - started:.1f}s: {size_of([path])}, {d.gguf_type}")
    print(f"  llama.cpp:  llama-cli -m {path} -p \"{cfg.generation.prompt}\" --temp 0")
    print(f"  Ollama:     cd {folder} && ollama create {path.stem} -f {modelfile.name} "
          f"&& ollama run {path.stem}")
    return path


# ---- make deploy ----


def deploy_hub(cfg: Config) -> None:
    folder = Path(cfg.deployment.export_dir) / "hf"
    plan = hub.preflight(folder, cfg.deployment.repo_id, cfg.deployment.private)
    print(plan.summary())
    url = hub.upload(plan)
    print(f"Uploaded {len(plan.files)} files to {url}")
    readme = folder / "README.md"
    if readme.is_file() and plan.repo_id not in readme.read_text(encoding="utf-8"):
        print(f"(The model card's commands load from {folder}; `make export ARGS=\"--repo-id "
              f"{plan.repo_id}\"` then `make deploy` makes them name the repository.)")


def deploy_replicate(cfg: Config) -> None:
    folder = Path(cfg.deployment.export_dir) / "hf"
    hf.check_hf_folder(folder)
    with project_lock("make deploy", Path(cfg.path).parent):
        target = replicate.write_replicate_folder(folder, Path("deploy") / "replicate")
    print(f"Wrote {target}/: cog.yaml, predict.py and model/ (a copy of {folder}/)")
    replicate.push(target, cfg.deployment.replicate_model)


# ---- command line ----


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python deploy.py",
        description="Export the trained model (Hugging Face folder, GGUF) or deploy it (the "
                    "Hugging Face Hub, Replicate). Defaults: deployment in llm.config.js.")
    parser.add_argument("action", choices=("export", "deploy"),
                        help="export: write export/hf (or export/gguf); deploy: upload or "
                             "package export/hf")
    parser.add_argument("--format", choices=("hf", "gguf"), default="hf",
                        help="export: 'hf' (transformers; default) or 'gguf' (llama.cpp, Ollama)")
    parser.add_argument("--target", choices=("huggingface", "replicate"), default="huggingface",
                        help="deploy: 'huggingface' (the Hub; default) or 'replicate'")
    for flag, key, what in (("--checkpoint", "checkpoint", "'auto', 'best', 'latest' or a .pt"),
                            ("--dtype", "dtype", "fp32, bf16 or fp16"),
                            ("--gguf-type", "gguf_type", "f32, f16 or q8_0"),
                            ("--repo-id", "repo_id", "your-name/model-name on the Hub"),
                            ("--private", "private", "true or false")):
        parser.add_argument(flag, dest=f"override:deployment.{key}", metavar="VALUE",
                            help=f"{what} (default: deployment.{key})")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))  # small, short CPU work

    if args.action == "deploy":
        (deploy_hub if args.target == "huggingface" else deploy_replicate)(cfg)
        return
    with project_lock("make export", Path(cfg.path).parent):
        trained = load_trained(cfg)
        (export_hf if args.format == "hf" else export_gguf)(cfg, trained)


if __name__ == "__main__":
    run_cli(main)
