"""Evaluate a trained checkpoint: loss, perplexity, bits per byte, speed, sample generations.

    make eval                                  # = python -m evaluation.evaluate (best checkpoint)
    python -m evaluation.evaluate --checkpoint checkpoints/step_000500.pt --json logs/eval.json
    python -m evaluation.evaluate --max-batches 0     # the whole validation split

Bits per byte is comparable across tokenizers; loss and perplexity only between models that
share a tokenizer.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from config import add_config_arguments, config_from_args
from data.dataset import load_split, read_meta
from errors import run_cli
from evaluation.generate import generate_tokens
from evaluation.metrics import bits_per_byte, evaluate_loss, perplexity
from tokenizer.load import check_same_tokenizer, load_tokenizer
from training.checkpoints import load_trained_model
from training.device import autocast, pick_device, pick_precision, set_threads


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
    tokenizer = load_tokenizer(cfg.tokenizer.path)
    check_same_tokenizer(info["tokenizer_hash"], cfg.tokenizer.path, info["path"])
    meta = read_meta(cfg.data.processed_dir, cfg.tokenizer.path)
    val_tokens = load_split(cfg.data.processed_dir, "val")
    max_length = model.config.max_length

    start = time.perf_counter()
    loss, scored = evaluate_loss(
        model, val_tokens, max_length, min(cfg.data.stride, max_length),
        cfg.training.batch_size, args.max_batches or None, device,
        autocast_ctx=lambda: autocast(device, precision))
    seconds = time.perf_counter() - start
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
        "samples": [],
    }
    g = cfg.generation
    for i in range(args.samples):
        generator = torch.Generator().manual_seed(i)
        ids = tokenizer.encode(g.prompt).ids
        start = time.perf_counter()
        new = list(generate_tokens(model, ids, g.max_new_tokens, g.temperature, g.top_k, g.top_p,
                                   g.repetition_penalty, generator=generator))
        rate = len(new) / max(time.perf_counter() - start, 1e-9)
        results["generation_tokens_per_sec"] = rate
        results["samples"].append(g.prompt + tokenizer.decode(new))

    print(f"checkpoint:     {results['checkpoint']} (step {results['step']})")
    print(f"parameters:     {results['parameters'] / 1e6:.2f}M")
    print(f"val loss:       {loss:.4f} over {scored:,} tokens")
    print(f"perplexity:     {results['perplexity']:.2f}")
    print(f"bits per byte:  {results['bits_per_byte']:.4f}")
    print(f"eval speed:     {results['eval_tokens_per_sec']:,.0f} tokens/s ({device.type}, "
          f"{precision})")
    if "generation_tokens_per_sec" in results:
        print(f"generation:     {results['generation_tokens_per_sec']:,.0f} tokens/s")
    for i, text in enumerate(results["samples"], 1):
        print(f"\n--- sample {i} ---\n{text}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
