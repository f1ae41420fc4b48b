"""Evaluate a trained checkpoint on the validation split, with its objective's measures, its speed,
and samples of what it does.

    make eval                                  # = python -m evaluation.evaluate (best checkpoint)
    python -m evaluation.evaluate --checkpoint checkpoints/step_000500.pt --json logs/eval.json
    python -m evaluation.evaluate --max-batches 0     # the whole validation split

gpt: loss, perplexity and bits per byte of the next token (bits per byte is comparable across
tokenizers; loss and perplexity only between models that share a tokenizer). bert: loss,
perplexity and accuracy on the hidden tokens. t5: loss and perplexity of the output spans, and
the share of spans it writes exactly right. runtime/objectives.py has what each one means.

    python -m evaluation.evaluate --chat        # make eval ARGS=--chat: the tuned model

--chat scores answers instead (runtime/chat_tuning.py), of the tuned model (checkpoints/finetune/)
or of any checkpoint given: the loss on the assistant's tokens of the held-out conversations,
answer_accuracy (the share of the held-out questions about a story answered with the right
fact) and request_match (the share of story requests whose story has what was asked for). A
base checkpoint is scored the same way, for contrast (`--checkpoint checkpoints/best.pt`).
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from config import Config, GenerationConfig, add_config_arguments, config_from_args
from data.splits import load_split, read_meta
from errors import ConfigurationError, run_cli
from runtime.checkpoints import load_trained_model, model_folder
from runtime.device import autocast, pick_device, pick_precision, set_threads
from runtime.objectives import Objective, objective_for
from tokenizer.load import pad_token, tokenizer_of

LABELS = {"val_loss": "val loss", "val_ppl": "perplexity", "val_bpb": "bits per byte",
          "val_mlm_accuracy": "mlm accuracy", "val_span_match": "span match",
          "val_answer_accuracy": "answer accuracy", "val_request_match": "request match"}
SHARES = ("val_mlm_accuracy", "val_span_match", "val_answer_accuracy", "val_request_match")


def sample(model: torch.nn.Module, objective: Objective, settings: GenerationConfig,
           count: int) -> tuple[list[str], float]:
    """`count` samples of what the model does with settings.prompt (seeds 0, 1, ...), and how
    many of them it makes per second."""
    texts, started = [], time.perf_counter()
    for i in range(count):
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(i)
        text = objective.sample(model, settings.prompt, settings, generator)
        if objective.name == "chat":  # the question, then the model's answer
            text = f"{settings.prompt}\n\n=> {text}"
        texts.append(settings.prompt + text if objective.continues_prompt else text)
    return texts, count / max(time.perf_counter() - started, 1e-9)


def evaluate_answers(cfg: Config, model: torch.nn.Module, info: dict, tokenizer: Tokenizer,
                     device: torch.device, precision: str
                     ) -> tuple[Objective, dict[str, Any], str]:
    """--chat: the instruction-tuning objective's measures on every held-out conversation, and
    request_match (slow: it writes whole stories, so only here, not during tuning); and a
    held-out question, to show an answer to."""
    if model.config.architecture == "bert":
        raise ConfigurationError("a BERT model gives no answers to score (it is an encoder)",
                                 "leave out --chat: `make eval` scores its masked tokens")
    # Here: a bert project has no instruction tuning, so none of these files.
    from data.finetune import collate_for, conversation_sets, make_rows
    from runtime.chat_tuning import chat_objective, request_match
    from tokenizer.chat_format import ChatFormat

    eos = cfg.tokenizer.special_tokens[0]
    chat = ChatFormat(tokenizer, info["chat_template"], {"bos_token": eos, "eos_token": eos}) \
        if info["chat_template"] else ChatFormat.load(tokenizer, eos_token=eos)
    _, held_out, _ = conversation_sets(cfg.finetune, train=False)
    mc = model.config
    pad = tokenizer.token_to_id(pad_token(cfg.tokenizer))
    output = cfg.generation.max_new_tokens if mc.architecture == "t5" else 0
    max_length = cfg.finetune.max_length or mc.max_length
    rows, _ = make_rows(mc.architecture, held_out, chat, max_length, output)
    start = pad if mc.architecture == "t5" else None
    objective = chat_objective(mc, chat, rows, held_out, collate_for(mc.architecture, pad),
                               rows, start)
    metrics = objective.evaluate(model, rows, cfg.finetune.batch_size, None, device,
                                 autocast_ctx=lambda: autocast(device, precision))
    requests = request_match(model, chat, held_out, decoder_start=start)
    if requests is not None:
        metrics["val_request_match"] = requests
    question = next((c.messages[-2]["content"] for c in held_out if c.answer),
                    held_out[0].messages[0]["content"])
    return objective, metrics, question


def print_results(results: dict[str, Any]) -> None:
    print(f"checkpoint:     {results['checkpoint']} (step {results['step']})")
    print(f"model:          {results['architecture']}, {results['parameters'] / 1e6:.2f}M "
          f"parameters, objective {results['objective']}")
    for key, label in LABELS.items():
        if key in results["metrics"]:
            value = results["metrics"][key]
            shown = f"{100 * value:.1f}%" if key in SHARES \
                else f"{value:.4f}" if key != "val_ppl" else f"{value:.2f}"
            print(f"{label + ':':<16}{shown}")
    print(f"scored tokens:  {results['scored_tokens']:,}")
    print(f"eval speed:     {results['eval_tokens_per_sec']:,.0f} tokens/s ({results['device']}, "
          f"{results['precision']})")
    if results["samples"]:
        print(f"samples:        {len(results['samples'])}, "
              f"{1 / max(results['samples_per_sec'], 1e-9):.2f}s each")
    for i, text in enumerate(results["samples"], 1):
        print(f"\n--- sample {i} ---\n{text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="auto",
                        help="'auto' (best, else latest), 'best', 'latest' or a file")
    parser.add_argument("--max-batches", type=int, default=50,
                        help="validation batches to score (0 = all of them; default 50)")
    parser.add_argument("--samples", type=int, default=2,
                        help="sample generations to show (default 2)")
    parser.add_argument("--json", metavar="PATH", help="also write the results to this file")
    parser.add_argument("--chat", action="store_true",
                        help="score answers (the tuned model of make finetune, by default)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)

    threads = set_threads(cfg.training.threads)
    device = pick_device(cfg.training.device)
    # --chat scores the tuned model when there is one (make finetune); plain eval the trained.
    folder = model_folder(cfg.checkpoints.dir, args.checkpoint) if args.chat \
        else Path(cfg.checkpoints.dir)
    model, info = load_trained_model(args.checkpoint, folder, device)
    precision = pick_precision(cfg.training.precision, device, model.config.dim)
    tokenizer, tokenizer_path = tokenizer_of(info["path"], info["tokenizer_hash"],
                                             cfg.tokenizer.path)
    start = time.perf_counter()
    settings = cfg.generation
    if args.chat:
        objective, metrics, question = evaluate_answers(cfg, model, info, tokenizer, device,
                                                        precision)
        settings = dataclasses.replace(settings, prompt=question)
    else:
        meta = read_meta(cfg.data.processed_dir, str(tokenizer_path))
        val_tokens = load_split(cfg.data.processed_dir, "val")
        objective = objective_for(cfg, model.config, tokenizer)
        metrics = objective.evaluate(
            model, val_tokens, cfg.training.batch_size, args.max_batches or None, device,
            autocast_ctx=lambda: autocast(device, precision),
            text_size=(meta["val_tokens"], meta["val_bytes"]))
    seconds = time.perf_counter() - start
    samples, rate = sample(model, objective, settings, args.samples)
    scored = metrics.pop("scored_tokens")
    results = {
        "checkpoint": info["path"],
        "step": info["step"],
        "architecture": model.config.architecture,
        "objective": objective.name,
        "parameters": model.num_parameters(),
        "metrics": metrics,
        "scored_tokens": scored,
        "eval_tokens_per_sec": scored / max(seconds, 1e-9),
        "device": device.type,
        "precision": precision,
        "threads": threads,
        "samples": samples,
        "samples_per_sec": rate,
    }
    print_results(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
