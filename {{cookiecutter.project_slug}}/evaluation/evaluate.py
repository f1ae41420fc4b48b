"""Evaluate a trained checkpoint: loss, perplexity, bits per byte, speed, sample generations.

    make eval                                  # = python -m evaluation.evaluate (best checkpoint)
    python -m evaluation.evaluate --checkpoint checkpoints/step_000500.pt --json logs/eval.json
    python -m evaluation.evaluate --max-batches 0     # the whole validation split

Bits per byte is comparable across tokenizers; loss and perplexity only between models that
share a tokenizer.
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from config import GenerationConfig, add_config_arguments, config_from_args
from data.splits import load_split, read_meta
from errors import run_cli
from runtime.checkpoints import load_trained_model
from runtime.device import autocast, pick_device, pick_precision, set_threads
from runtime.metrics import bits_per_byte, evaluate_loss, perplexity
from runtime.sampling import generate_tokens
from tokenizer.load import tokenizer_of


def sample(model: torch.nn.Module, tokenizer: Tokenizer, settings: GenerationConfig,
           count: int) -> tuple[list[str], float | None]:
    """`count` continuations of settings.prompt (seeds 0, 1, ...), and tokens per second."""
    texts, rate = [], None
    ids = tokenizer.encode(settings.prompt).ids
    for i in range(count):
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(i)
        new = list(generate_tokens(model, ids, settings, generator=generator))
        rate = len(new) / max(time.perf_counter() - start, 1e-9)
        texts.append(settings.prompt + tokenizer.decode(new))
    return texts, rate


def print_results(results: dict[str, Any]) -> None:
    print(f"checkpoint:     {results['checkpoint']} (step {results['step']})")
    print(f"parameters:     {results['parameters'] / 1e6:.2f}M")
    print(f"val loss:       {results['val_loss']:.4f} over {results['scored_tokens']:,} tokens")
    print(f"perplexity:     {results['perplexity']:.2f}")
    print(f"bits per byte:  {results['bits_per_byte']:.4f}")
    print(f"eval speed:     {results['eval_tokens_per_sec']:,.0f} tokens/s ({results['device']}, "
          f"{results['precision']})")
    if results.get("generation_tokens_per_sec") is not None:
        print(f"generation:     {results['generation_tokens_per_sec']:,.0f} tokens/s")
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
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)

    threads = set_threads(cfg.training.threads)
    device = pick_device(cfg.training.device)
    model, info = load_trained_model(args.checkpoint, cfg.checkpoints.dir, device)
    precision = pick_precision(cfg.training.precision, device, model.config.dim)
    tokenizer, tokenizer_path = tokenizer_of(info["path"], info["tokenizer_hash"],
                                             cfg.tokenizer.path)
    meta = read_meta(cfg.data.processed_dir, str(tokenizer_path))
    val_tokens = load_split(cfg.data.processed_dir, "val")
    max_length = model.config.max_length

    start = time.perf_counter()
    loss, scored = evaluate_loss(
        model, val_tokens, max_length, min(cfg.data.stride, max_length),
        cfg.training.batch_size, args.max_batches or None, device,
        autocast_ctx=lambda: autocast(device, precision))
    seconds = time.perf_counter() - start
    samples, rate = sample(model, tokenizer, cfg.generation, args.samples)
    results = {
        "checkpoint": info["path"],
        "step": info["step"],
        "parameters": model.num_parameters(),
        "val_loss": loss,
        "perplexity": perplexity(loss),
        "bits_per_byte": bits_per_byte(loss, meta["val_tokens"], meta["val_bytes"]),
        "scored_tokens": scored,
        "eval_tokens_per_sec": scored / max(seconds, 1e-9),
        "device": device.type,
        "precision": precision,
        "threads": threads,
        "samples": samples,
    }
    if rate is not None:
        results["generation_tokens_per_sec"] = rate
    print_results(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
