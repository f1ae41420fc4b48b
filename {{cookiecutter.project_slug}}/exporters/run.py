"""What `make export` and `make deploy` do (deploy.py parses the command line and takes the
project's write lock around them), and what the huggingface plugin calls when training ends.

    trained = load_trained(cfg)      # the checkpoint of deployment.checkpoint + its tokenizer
    export_hf(cfg, trained)          # -> export/hf/
    export_gguf(cfg, trained)        # -> export/gguf/
    deploy_hub(cfg)                  # export/hf/ -> the Hugging Face Hub
    deploy_replicate(cfg)            # export/hf/ -> deploy/replicate/ (+ push with cog)
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from tokenizers import Tokenizer

from config import Config, GenerationConfig
from data.splits import read_meta
from errors import DataError, DeploymentError
from exporters import card, hf, hub, replicate
from project_lock import project_lock
from runtime.checkpoints import load_trained_model, model_folder
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
    chat: ChatTurns | None = None
    """A tuned model's chat template and the tokens that end its turn (None: a base model)."""


@dataclasses.dataclass
class ChatTurns:
    template: str
    """The Jinja chat template the model was tuned with (tokenizer/chat_template.jinja)."""
    stop_ids: tuple[int, ...]
    """The tokens that end an answer (<|im_end|>, end of text)."""
    stops: tuple[str, ...]
    """... as text."""


def load_trained(cfg: Config) -> Trained:
    """The checkpoint of deployment.checkpoint on the CPU (the tuned model when `make finetune`
    made one), and the tokenizer it was trained with (exports are written from CPU tensors, the
    same on every machine)."""
    which = cfg.deployment.checkpoint
    model, info = load_trained_model(which, model_folder(cfg.checkpoints.dir, which), "cpu")
    tokenizer, used = tokenizer_of(info["path"], info["tokenizer_hash"], cfg.tokenizer.path)
    # More embedding rows than tokens is fine (published checkpoints pad it, `make import`);
    # a token without a row is not.
    if tokenizer.get_vocab_size() > model.config.vocab_size:
        raise DeploymentError(
            f"{info['path']} has a vocabulary of {model.config.vocab_size} tokens but the "
            f"tokenizer {used} has {tokenizer.get_vocab_size()}",
            "export the checkpoint from the project that trained it",
        )
    special = hf.special_tokens_of(tokenizer, cfg.tokenizer.special_tokens)
    chat = None
    if info.get("chat_template"):  # tuned: its template goes into every format
        from tokenizer.chat_format import ChatFormat

        turns = ChatFormat(tokenizer, info["chat_template"],
                           {"bos_token": special.eos, "eos_token": special.eos})
        chat = ChatTurns(info["chat_template"], turns.stop_ids,
                         tuple(tokenizer.id_to_token(i) for i in turns.stop_ids))
    return Trained(model, info, tokenizer, special, chat)


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


# ---- where an export is written, and what can go wrong on the way ----

EXPORT_FIX = "free some disk space, or set deployment.export_dir to a writable folder"


def check_export_folder(folder: Path, replaces: tuple[str, ...] = ()) -> None:
    """Before anything is written: every folder on the way to `folder` is a folder, and, when
    the export replaces `folder` as a whole (`replaces`: the files an export writes there),
    `folder` holds nothing else: a folder of yours that happens to have its name is never
    replaced, nor a file."""
    for path in (folder, *folder.parents):
        if (path.exists() or path.is_symlink()) and not path.is_dir():
            raise DeploymentError(f"cannot export to {folder}/: {path} is a file, not a folder",
                                  "move that file, or set deployment.export_dir to another "
                                  "folder (--deployment.export_dir export-2)")
    if replaces and folder.is_dir():
        others = sorted(p.name for p in folder.iterdir()
                        if p.name not in replaces and not p.name.startswith("."))
        if others:
            raise DeploymentError(
                f"{folder}/ holds files that no export wrote ({', '.join(others[:5])}"
                f"{', ...' if len(others) > 5 else ''}), and an export replaces that folder "
                "whole: nothing was written", "move those files elsewhere, or set "
                "deployment.export_dir to another folder (--deployment.export_dir export-2)")


@contextlib.contextmanager
def writing_export(folder: Path) -> Iterator[None]:
    """A write that fails (a full disk, a read-only or vanished folder; safetensors reports its
    own errors as SafetensorError) -> DeploymentError naming the folder and the fix. The writers
    work on temporary names, so a failed export leaves the previous one as it was."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, SafetensorError) as error:
        reason = getattr(error, "strerror", None) or \
            str(error).removeprefix("Error while serializing: ")
        raise DeploymentError(f"could not write the export to {folder}/: {reason}",
                              EXPORT_FIX) from None


# ---- make export ----


def export_hf(cfg: Config, trained: Trained) -> Path:
    d, started = cfg.deployment, time.perf_counter()
    folder = Path(d.export_dir) / "hf"
    check_export_folder(folder, replaces=(*hf.FILES, "README.md"))
    prompt = cfg.generation.prompt
    text = card.model_card(cfg, trained.info, trained.model.num_parameters(),
                           (prompt, greedy_sample(cfg, trained, prompt)), data_meta(cfg),
                           name=Path(cfg.path).resolve().parent.name, repo_id=d.repo_id,
                           dtype=d.dtype)
    with writing_export(folder):
        files = hf.write_hf_folder(trained.model, trained.tokenizer, trained.special,
                                   cfg.generation, folder, dtype=d.dtype, card=text,
                                   chat_template=trained.chat and trained.chat.template,
                                   stop_ids=trained.chat.stop_ids if trained.chat else ())
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
    chat = trained.chat
    check_export_folder(folder)  # (written into, file by file: what else is there stays)
    with writing_export(folder):
        path = gguf.write_gguf(trained.model, trained.tokenizer, trained.special, folder,
                               name=Path(cfg.path).resolve().parent.name, file_type=d.gguf_type,
                               chat_template=chat and chat.template,
                               end_of_turn=chat.stop_ids[0] if chat else None)
        modelfile = gguf.write_modelfile(folder, path.name, cfg.generation,
                                         chat.stops if chat else (trained.special.eos,),
                                         trained.model.config.max_length,
                                         chat_template=chat and chat.template)
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
