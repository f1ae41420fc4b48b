"""Instruction tuning: teach the trained model to answer, on conversations.

    make finetune                                  # = python -m training.finetune
    make finetune ARGS="--finetune.max_steps 600"  # any config key, for this run only
    make finetune ARGS=--resume                    # continue an interrupted tuning exactly
    make finetune ARGS=--fresh                     # set the previous tuning aside, start over
    make finetune NPROC=4                          # 4 processes (GPUs), as make train
    make chat                                      # talks to the tuned model

It starts from the trained model (`finetune.base`: checkpoints/best.pt, else the newest) and
tunes it on data/finetune/*.jsonl (corpus/conversations.py reads them), or on the built-in
instruction set (corpus/instructions.py: questions about stories) when that folder is empty.
Conversations go through the chat template (tokenizer/chat_template.jinja); the loss counts the
assistant's tokens only (data/finetune.py). gpt learns each whole conversation; t5 learns to
write each assistant turn from the conversation before it (text to text). bert cannot be tuned
to chat: an encoder fills in blanks and writes no answers (a bert project has no such file, and
its `make finetune` says so).

This is the same training as `make train`, one stage later: the same Trainer, callbacks and
checkpoint rules (training/run.py), in a run folder of its own (checkpoints/finetune/,
logs/finetune/), so Ctrl+C saves, `--resume` continues bit for bit, the best checkpoint is
chosen by validation loss, and the dashboard and TensorBoard show it. Each checkpoint records
its base model and the chat template it was trained with (chat and export use that one).
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import contextlib
import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from config import Config, add_config_arguments, config_from_args
from errors import ConfigurationError, DataError, TrainingError, run_cli
from plugins.manager import PluginManager
from project_lock import project_lock

if TYPE_CHECKING:
    from training.callbacks.base import Callback

def main(argv: list[str] | None = None, extra_callbacks: list[Callback] | None = None) -> int:
    """Tune. `extra_callbacks` run after the built-in ones (add your own here)."""
    parser = argparse.ArgumentParser(
        prog="python -m training.finetune", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resume", nargs="?", const="auto", metavar="auto|PATH",
                        help="continue a tuning: 'auto' = its newest good checkpoint, or a file")
    parser.add_argument("--fresh", action="store_true",
                        help="move the previous tuning to checkpoints/finetune/previous/ and "
                             "start again")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    main_process = os.environ.get("RANK", "0") == "0"
    lock = project_lock("make finetune", Path(cfg.path).parent,
                        run_folder=stage_folders(cfg)[0]) if main_process \
        else contextlib.nullcontext()
    with lock:
        plugins = [PluginManager.from_config(cfg)] if cfg.plugins.enabled and main_process \
            else []
        return finetune(cfg, args.resume, args.fresh, plugins, extra_callbacks or [])


def stage_folders(cfg: Config) -> tuple[str, str]:
    """This stage's checkpoints and logs folders: inside the training run's."""
    return (str(Path(cfg.checkpoints.dir) / "finetune"), str(Path(cfg.logging.dir) / "finetune"))


def stage_config(cfg: Config, train_rows: int, processes: int, prompt: str) -> Config:
    """The config this stage trains with: finetune's settings in place of training's, its own
    run folders, and a sample prompt the model can answer."""
    f = cfg.finetune
    steps = f.max_steps
    if f.epochs:
        steps = max(1, math.ceil(f.epochs * train_rows
                                 / (f.batch_size * f.gradient_accumulation * processes)))
    training = dataclasses.replace(
        cfg.training, batch_size=f.batch_size, gradient_accumulation=f.gradient_accumulation,
        max_steps=steps, learning_rate=f.learning_rate, min_lr=f.min_lr,
        warmup_steps=min(f.warmup_steps, steps), weight_decay=f.weight_decay,
        eval_interval=f.eval_interval, eval_batches=f.eval_batches, seed=f.seed)
    checkpoints_dir, logs_dir = stage_folders(cfg)
    return dataclasses.replace(
        cfg, training=training,
        checkpoints=dataclasses.replace(cfg.checkpoints, dir=checkpoints_dir),
        logging=dataclasses.replace(cfg.logging, dir=logs_dir),
        generation=dataclasses.replace(cfg.generation, prompt=prompt))


def finetune(cfg: Config, resume: str | None, fresh: bool, plugins: list[Callback],
             extra_callbacks: list[Callback]) -> int:
    import torch

    from data.finetune import ConversationBatches, collate_for, conversation_sets, make_rows
    from runtime.chat_tuning import chat_objective
    from runtime.checkpoint_folder import CheckpointFolder
    from runtime.checkpoints import has_checkpoints, load_trained_model
    from tokenizer.chat_format import ChatFormat
    from tokenizer.load import pad_token, tokenizer_of
    from training.run import build_callbacks, fit, plan_parallelism, processes
    from training.trainer import assemble_trainer

    if not has_checkpoints(cfg.checkpoints.dir) and cfg.finetune.base in ("auto", "best",
                                                                          "latest"):
        raise TrainingError(f"there is no trained model to tune yet (no checkpoint in "
                            f"{cfg.checkpoints.dir}/)",
                            "run `make train` first (the nano preset takes a few minutes on a "
                            "CPU), then `make finetune`")
    with processes(cfg) as (world, device, precision, threads):
        model, base = load_trained_model(cfg.finetune.base, cfg.checkpoints.dir, device)
        if Path(base["path"]).resolve().is_relative_to(Path(stage_folders(cfg)[0]).resolve()):
            raise ConfigurationError(
                f"finetune.base is {base['path']}, a checkpoint of this stage's own run folder",
                "tune from the trained model (finetune.base: 'auto'); to go on with a tuning, "
                "use `make finetune ARGS=--resume`")
        tokenizer, tokenizer_path = tokenizer_of(base["path"], base["tokenizer_hash"],
                                                 cfg.tokenizer.path)
        eos = cfg.tokenizer.special_tokens[0]
        chat = ChatFormat.load(tokenizer, eos_token=eos)
        train, val, source = conversation_sets(cfg.finetune)
        mc = model.config
        max_length = cfg.finetune.max_length or mc.max_length
        pad = tokenizer.token_to_id(pad_token(cfg.tokenizer))
        start = pad if mc.architecture == "t5" else None  # T5's decoder starts from padding
        collate = collate_for(mc.architecture, pad)
        output = cfg.generation.max_new_tokens if mc.architecture == "t5" else 0
        train_rows, cut = make_rows(mc.architecture, train, chat, max_length, output)
        val_rows, val_cut = make_rows(mc.architecture, val, chat, max_length, output)
        if cut.shortened or val_cut.shortened:
            print(f"{cut.shortened + val_cut.shortened} conversation(s) were longer than "
                  f"{max_length} tokens and were cut to it ({cut.dropped + val_cut.dropped} of "
                  "them lost their whole answer and are left out): raise finetune.max_length "
                  "(up to model.max_length) or shorten them")
        if not train_rows or not val_rows:
            raise DataError(f"no conversation of {source} fits in {max_length} tokens with its "
                            "answer", "shorten the conversations, or raise finetune.max_length")
        prompt = next((c.messages[-2]["content"] for c in val if c.answer), val[0].messages[0][
            "content"])
        stage = stage_config(cfg, len(train_rows), world.size, prompt)
        parallelism = plan_parallelism(stage, mc, precision, world, device)
        callbacks = build_callbacks(stage, plugins, extra_callbacks, world, parallelism)
        model.train()
        torch.manual_seed(stage.training.seed)
        extra = {"stage": "finetune", "chat_template": chat.template_text,
                 "finetune": {"base": base["path"], "base_step": base["step"],
                              "base_val_loss": base["val_loss"], "data": source}}
        if base.get("imported_from"):
            extra["imported_from"] = base["imported_from"]
        if cfg.finetune.lora_rank:  # adapters only, the rest frozen (before the optimizer)
            from models.lora import apply_lora, lora_settings, trainable_parameters

            apply_lora(model, cfg.finetune.lora_rank, cfg.finetune.lora_alpha)
            extra["lora"] = lora_settings(model)
            print(f"LoRA rank {cfg.finetune.lora_rank}: training "
                  f"{trainable_parameters(model):,} of {model.num_parameters():,} parameters")
        objective = chat_objective(mc, chat, val_rows, val, collate, train_rows, start)
        t = stage.training
        batches = ConversationBatches(train_rows, t.batch_size, t.seed, collate, world.rank,
                                      world.size, round(cfg.finetune.length_warmup * t.max_steps))
        key = "output" if mc.architecture == "t5" else "ids"
        meta = {"train_tokens": sum(len(row[key]) for row in train_rows),
                "val_tokens": sum(len(row[key]) for row in val_rows)}
        trainer = assemble_trainer(stage, model, objective, batches, val_rows, meta, device,
                                   precision, callbacks, base["tokenizer_hash"], world=world,
                                   parallelism=parallelism, extra_state=extra)
        folder = CheckpointFolder(stage.checkpoints.dir, stage.logging.dir, world)

        def summary() -> None:
            t = stage.training
            print(f"tuning {mc.architecture} '{mc.preset}' from {base['path']} (step "
                  f"{base['step']:,}) on {source}")
            print(f"data: {len(train_rows):,} training and {len(val_rows):,} held-out rows | "
                  f"{t.batch_size * t.gradient_accumulation * world.size} rows per step, "
                  f"{t.max_steps} steps | loss on the assistant's tokens only")
            print(f"device: {device.type} | precision {precision} | threads {threads}")

        fit(trainer, folder, resume, fresh, tokenizer_path, summary)
    return 0


if __name__ == "__main__":
    run_cli(main)
