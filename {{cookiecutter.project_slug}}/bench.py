"""How fast does this project train, prepare data and generate on this machine? Measure it.

    make bench                                       # = python bench.py: this project's model
    make bench ARGS="--preset tiny"                  # a preset's shape (models/presets.py)
    make bench ARGS="--model.dim 320 --model.layers 6 --training.batch_size 8"
    make bench ARGS="--compare"                      # also time plain fp32 (the speedup)
    make bench ARGS="--logging"                      # also time logging at log_interval 1
    make bench ARGS="--training.precision fp32"      # force a choice (also compile, threads, ...)
    python bench.py --steps 10 --repeats 5 --skip data,generate

Prints a table and writes logs/bench.json. Nothing needs to exist first: the model is freshly
initialised, training reads random token ids (or data/processed when it matches the model), and
data preparation encodes generated stories with your tokenizer (or a throwaway one trained in a
temporary folder). Your project's files are never touched, except logs/bench.json.

What is measured (warm-up excluded, several repeats, medians):
- training: tokens/s of `Trainer.train_step`, the very step `make train` runs (same precision,
  optimizer, clipping, compile setting); the step time split into data, forward, backward and
  optimizer (a copy of the step with a timer between the phases); MFU = achieved FLOP/s over a
  matmul peak measured here, in the dtype the step computes in; peak memory.
- data preparation: MB/s of `data.prepare.prepare` on a generated corpus (what `make data` runs).
- generation: tokens/s for 256 new tokens with and without the KV cache (`make generate`'s path:
  gpt's text, t5's decoder; bert does not generate: it fills in its masks in one pass).
- logging (--logging): the step time of `Trainer.fit` at training.log_interval 1 with the run's
  progress records, logs/metrics.jsonl and TensorBoard (written to a temporary folder) and with
  no callback at all, interleaved; and the time the loop itself spends in those callbacks.

Timings move with whatever else the machine is doing: compare numbers from one run (`--compare`
interleaves the two setups for that reason), and close other programs for absolute figures.
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from config import (
    ONLY_FOR,
    Config,
    GenerationConfig,
    ModelConfig,
    add_config_arguments,
    load_config,
)
from errors import ConfigurationError, run_cli
from models.presets import PRESETS, SHAPE_KEYS, count_parameters
from runtime.device import (
    describe,
    pick_device,
    pick_precision,
    set_threads,
)
from training.callbacks.base import Callback
from training.callbacks.logging import LoggingCallback
from training.callbacks.progress import ProgressCallback
from training.optimizer import lr_at
from training.trainer import Trainer, build_model, build_trainer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---- small tools ----


def sync(device: torch.device) -> None:
    """Wait for the GPU: its work is queued, so a clock read without this measures nothing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def median_time(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median seconds of fn() over `repeats` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb() -> float | None:
    """The largest resident memory this process has had so far, in MB (None on Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3  # bytes on macOS, KB on Linux


def matmul_peak(device: torch.device, precision: str, repeats: int = 5) -> float:
    """FLOP/s of one large square matmul in the dtype the training step computes in.

    This is the machine's practical peak (what a well-shaped matmul reaches here, now), not a
    datasheet figure, so MFU below says how much of *this* machine the step uses. It is measured
    the same way as the step (median of repeats): other programs slow both alike.
    """
    n = {"cuda": 8192, "mps": 4096}.get(device.type, 2048)
    a = torch.randn(n, n, device=device, dtype=DTYPES[precision])
    b = torch.randn(n, n, device=device, dtype=DTYPES[precision])
    return 2 * n**3 / median_time(lambda: a @ b, device, repeats)


def flops_per_token(config: ModelConfig, params: int,
                    lengths: tuple[int, int, int] | None = None,
                    scored_share: float = 1.0) -> float:
    """Training FLOPs per token: 6 * params + 12 * layers * dim * context.

    6 * params: each weight does one multiply-add (2 FLOPs) per token in the forward pass and
    twice that in the backward pass. The tied embedding counts once, as the lm_head matmul (the
    lookup itself is free); an untied input embedding is left out of `params` for that reason.
    12 * layers * dim * context: attention's two matmuls (q @ k^T and scores @ v), 2 * 2 * dim *
    context FLOPs per token and layer forward, times 3 with backward, counted over the full
    context although causal attention needs only half (PaLM's convention, also nanoGPT's).
    Gradient checkpointing's recomputation is not counted: MFU counts the model's FLOPs, not the
    extra work a memory-saving choice adds.

    bert: the same, the original BERT's position and token-type embeddings being lookups too
    (attention is bidirectional, so all of the context is really computed), except that the MLM
    head (its dense transform and the tied decoder) runs only on the hidden tokens,
    `scored_share` of them (models/architectures/bert.py). t5 (`lengths` = (text tokens per
    row, encoder input S, decoder output T)): per row, 6 * (encoder blocks' params * S +
    (decoder blocks' params + the tied output matrix) * T) + 12 * layers * dim * (S^2 + T^2 +
    T * S) for its self-attentions and cross-attention, spread over the row's text tokens.
    """
    c = config
    if c.architecture == "t5" and lengths is not None:
        raw, S, T = lengths
        encoder = c.layers * (4 * c.dim**2 + 3 * c.dim * c.mlp_dim + 2 * c.dim) + c.dim
        decoder = c.layers * (8 * c.dim**2 + 3 * c.dim * c.mlp_dim + 3 * c.dim) + c.dim
        per_row = 6 * (encoder * S + (decoder + c.vocab_size * c.dim) * T) + \
            12 * c.layers * c.dim * (S * S + T * T + T * S)
        return per_row / raw
    if c.architecture == "bert":
        if c.variant == "bert":  # ModernBERT has no position or token-type tables
            params -= (c.max_length + 2) * c.dim  # position and token-type lookups
        head = c.vocab_size * c.dim + c.dim * c.dim  # decoder and transform matmuls
        params -= round((1 - scored_share) * head)  # skipped for the tokens not scored
    elif not c.tie_embeddings:
        params -= c.vocab_size * c.dim  # embed_tokens: a lookup, not a matmul
    return 6 * params + 12 * c.layers * c.dim * c.max_length


# ---- training ----


class PhaseTimer:
    """The `timer` given to the Trainer: adds up the time of each phase of its real train_step
    (data, forward, backward, optimizer), while `on`.

    The GPU is synchronised at every boundary so each phase is charged its own work; that costs a
    little, so the phases add up to slightly more than an uninstrumented step. When off, it does
    nothing, and the throughput steps run exactly as in `make train`.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.on = False
        self.seconds = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        if not self.on:
            yield
            return
        sync(self.device)
        start = time.perf_counter()
        yield
        sync(self.device)
        self.seconds[phase] += time.perf_counter() - start

    def time_step(self, trainer: Trainer) -> dict[str, float]:
        """One instrumented optimizer step; the seconds of each of its phases."""
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.on = True
        try:
            time_steps(trainer, 1)
        finally:
            self.on = False
        return dict(self.seconds)


def make_trainer(cfg: Config, model_config: ModelConfig, tokens: np.ndarray,
                 device: torch.device, precision: str,
                 tokenizer: Tokenizer | None = None) -> tuple[Trainer, PhaseTimer]:
    """The model and Trainer of `make train` (training/trainer.py build_trainer), on `tokens`
    (`tokenizer`: the special tokens of bert's and t5's objectives)."""
    timer = PhaseTimer(device)
    trainer = build_trainer(cfg, model_config, tokens, tokens, {}, device, precision,
                            tokenizer_hash="bench", timer=timer, tokenizer=tokenizer)
    trainer.model.train()
    # bert's and t5's short warm-up sequences (objective.short_sequence_steps) are past: time
    # the full-length steps that make up most of a run.
    trainer.batches.drawn = trainer.batches.schedule.short_batches
    return trainer, timer


def time_steps(trainer: Trainer, steps: int) -> float:
    """Seconds per optimizer step over `steps` real train_step calls."""
    if steps == 0:
        return 0.0
    sync(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = trainer.train_step(lr_at(trainer.step, trainer.cfg.training))
        trainer.step += 1
    loss.item()  # waits for the last step, like the loop's logging does
    return (time.perf_counter() - start) / steps


def peak_memory(device: torch.device, rss_before: float | None) -> dict[str, Any]:
    """The most memory the training has used so far, the way this device can tell."""
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 1e6,
                "memory_kind": "CUDA max_memory_allocated"}
    if device.type == "mps":
        return {"peak_memory_mb": torch.mps.driver_allocated_memory() / 1e6,
                "memory_kind": "MPS driver allocated memory"}
    return {"peak_memory_mb": peak_rss_mb(), "memory_kind": "process peak RSS",
            "rss_before_model_mb": rss_before}


def bench_training(cfg: Config, model_config: ModelConfig, tokens: np.ndarray,
                   device: torch.device, precision: str, args: argparse.Namespace,
                   tokenizer: Tokenizer | None = None) -> dict[str, Any]:
    t = cfg.training
    rss_before = peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer, timer = make_trainer(cfg, model_config, tokens, device, precision, tokenizer)
    tokens_per_step = t.batch_size * t.gradient_accumulation * trainer.objective.tokens_per_row
    warmup = args.warmup + (3 if t.compile else 0)  # compiling happens in the first steps
    time_steps(trainer, warmup)

    phases = [timer.time_step(trainer)]
    memory = peak_memory(device, rss_before)  # now, before a baseline model adds its own

    # Throughput of the real step; with --compare, interleaved with plain fp32 eager so that load
    # from other programs hits both alike (the order alternates too). One instrumented step per
    # repeat gives the split, under the same conditions.
    setups = {"fast": trainer}
    if args.compare:
        plain = dataclasses.replace(cfg, training=dataclasses.replace(
            t, compile=False, gradient_checkpointing=False))
        setups["fp32"] = make_trainer(plain, model_config, tokens, device, "fp32", tokenizer)[0]
        time_steps(setups["fp32"], args.warmup)
    step_times: dict[str, list[float]] = {name: [] for name in setups}
    for r in range(args.repeats):
        for name in (list(setups) if r % 2 == 0 else list(reversed(setups))):
            step_times[name].append(time_steps(setups[name], args.steps))
        phases.append(timer.time_step(trainer))
    step_time = statistics.median(step_times["fast"])
    split = {name: statistics.median(p[name] for p in phases) for name in phases[0]}

    params = trainer.model.num_parameters()
    batch = trainer.batches.next_batch()  # the shapes of one row (t5: input and output)
    lengths = (trainer.objective.tokens_per_row, batch["input_ids"].shape[1],
               batch["labels"].shape[1]) if "decoder_input_ids" in batch else None
    scored_share = float((batch["labels"] != -100).float().mean()) \
        if model_config.architecture == "bert" else 1.0  # bert's head: hidden tokens only
    per_token = flops_per_token(model_config, params, lengths, scored_share)
    tokens_per_sec = tokens_per_step / step_time
    peak = matmul_peak(device, precision)
    result = {
        "params": params,
        "tokens_per_step": tokens_per_step,
        "tokens_per_sec": tokens_per_sec,
        "step_seconds": step_time,
        "step_seconds_repeats": step_times["fast"],
        "split_seconds": split,
        "flops_per_token": per_token,
        "scored_share": scored_share,
        "flops_formula": "6 * params + 12 * layers * dim * context" if lengths is None else
                         "t5: 6 * (encoder * S + decoder * T) + 12 * layers * dim * (S^2 + T^2 + "
                         "S * T), per text token",
        "achieved_flops": per_token * tokens_per_sec,
        "matmul_peak_flops": peak,
        "matmul_peak_dtype": precision,
        "mfu": per_token * tokens_per_sec / peak,
        "optimizer": ("fused " if trainer.optimizer.defaults.get("fused") else "foreach ")
                     + type(trainer.optimizer).__name__,
        **memory,
    }
    if args.compare:
        baseline = statistics.median(step_times["fp32"])
        result["fp32_eager"] = {"tokens_per_sec": tokens_per_step / baseline,
                                "step_seconds": baseline,
                                "step_seconds_repeats": step_times["fp32"],
                                "speedup": baseline / step_time}
    result["_trainer"] = trainer  # for the generation benchmark; not written to JSON
    return result


# ---- logging ----


class TimedLogging(Callback):
    """The run's logging callbacks (progress records, metrics.jsonl, TensorBoard) behind one
    callback that notes when each step ends (wall clock and the process's CPU time, all threads)
    and how long the loop spent in them at that step (the records they log reach on_log from
    inside on_step_end, so that time includes it)."""

    def __init__(self, inner: list[Callback]) -> None:
        self.inner = inner
        self.ends: list[float] = []
        self.cpu_ends: list[float] = []
        self.in_callbacks: list[float] = []

    def on_train_begin(self, trainer: Any) -> None:
        for cb in self.inner:
            cb.on_train_begin(trainer)

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        start = time.perf_counter()
        for cb in self.inner:
            cb.on_step_end(trainer, metrics)
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())
        self.in_callbacks.append(self.ends[-1] - start)

    def on_evaluate(self, trainer: Any, metrics: dict[str, Any]) -> None:
        for cb in self.inner:
            cb.on_evaluate(trainer, metrics)

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        for cb in self.inner:
            cb.on_log(trainer, record)

    def on_train_end(self, trainer: Any) -> None:
        for cb in self.inner:
            cb.on_train_end(trainer)


def bench_logging(cfg: Config, model_config: ModelConfig, tokens: np.ndarray,
                  device: torch.device, precision: str, args: argparse.Namespace,
                  tokenizer: Tokenizer | None = None) -> dict[str, Any]:
    """What logging every step costs: Trainer.fit's step time (from one step's end to the next)
    with the run's logging callbacks and without, interleaved (the order alternates), each
    repeat a fit() of --steps + 2 steps (the first and last are left out: start-up and the final
    evaluation). Console lines go to /dev/null (a terminal costs more than a file)."""
    t = dataclasses.replace(cfg.training, log_interval=1, eval_interval=10**9, eval_batches=1,
                            warmup_steps=0)  # (each timed fit() is a few steps long)
    cfg = dataclasses.replace(cfg, training=t)
    trainer, _ = make_trainer(cfg, model_config, tokens, device, precision, tokenizer)
    trainer.meta = {"train_tokens": len(tokens), "val_tokens": len(tokens)}  # the run record's
    time_steps(trainer, args.warmup)
    steps: dict[str, list[float]] = {"logging": [], "none": []}
    cpu: dict[str, list[float]] = {"logging": [], "none": []}
    in_callbacks: list[float] = []
    with tempfile.TemporaryDirectory() as logs, open(os.devnull, "w") as devnull, \
            contextlib.redirect_stdout(devnull):
        for r in range(args.repeats):
            for name in ("logging", "none") if r % 2 == 0 else ("none", "logging"):
                inner = [ProgressCallback(progress_bar=False),
                         LoggingCallback(logs, cfg.logging.tensorboard)] if name == "logging" \
                    else []
                timed = TimedLogging(inner)
                trainer.callbacks = [timed]
                trainer.cfg = dataclasses.replace(cfg, training=dataclasses.replace(
                    t, max_steps=trainer.step + args.steps + 2))
                trainer.fit()
                for times, ends in ((steps, timed.ends), (cpu, timed.cpu_ends)):
                    times[name] += [b - a for a, b in zip(ends[:-1], ends[1:], strict=True)][:-1]
                if name == "logging":
                    in_callbacks += timed.in_callbacks[1:-1]
    with_logging, without = statistics.median(steps["logging"]), statistics.median(steps["none"])
    loop = statistics.median(in_callbacks)
    cpu_logging, cpu_none = statistics.median(cpu["logging"]), statistics.median(cpu["none"])
    return {"step_seconds_logging": with_logging, "step_seconds_none": without,
            "overhead": with_logging / without - 1, "cpu_seconds_logging": cpu_logging,
            "cpu_seconds_none": cpu_none, "cpu_overhead": cpu_logging / cpu_none - 1,
            "loop_seconds_in_logging": loop,
            "loop_share": loop / without, "steps_timed": len(steps["none"]),
            "tensorboard": cfg.logging.tensorboard}


# ---- data preparation ----


# Runs in a fresh interpreter, like `make data`: prepare()'s worker processes are started with
# "spawn", which re-imports the main script, and this script's import of torch would slow them.
# It times a small corpus too, with as many processes: the difference is the rate once running.
PREPARE_TIMER = """
import json, sys, time
from config import load_config
from data.prepare import default_workers, prepare
config_path, overrides, small_dir = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
cfg = load_config(config_path, overrides)
small = load_config(config_path, {**overrides, "data.raw_dir": small_dir})
workers = default_workers(int(json.loads(sys.argv[4])))
result = {"processes": workers}
for name, c in (("small", small), ("full", cfg)):
    start = time.perf_counter()
    meta = prepare(c.data, c.tokenizer, batch_size=1, max_length=8, progress=False,
                   workers=workers)
    result[name] = {"seconds": time.perf_counter() - start,
                    "bytes": meta["train_bytes"] + meta["val_bytes"]}
print(json.dumps(result))
"""


def bench_data(cfg: Config, size_mb: float, repeats: int) -> dict[str, Any]:
    """MB/s of `make data` (data.prepare.prepare) on `size_mb` MB of generated stories.

    Reports the whole run's rate (start-up included) and the rate once running: (full - small
    corpus bytes) / (full - small seconds), which is what a large corpus will see.
    """
    from corpus.sample import generate_corpus
    from tokenizer.train import save_tokenizer, train_tokenizer

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        raw, small = Path(tmp) / "raw", Path(tmp) / "small"
        raw.mkdir()
        small.mkdir()
        separator = cfg.tokenizer.special_tokens[0]
        with open(raw / "stories.txt", "w", encoding="utf-8") as f, \
                open(small / "stories.txt", "w", encoding="utf-8") as f_small:
            for i, story in enumerate(generate_corpus(size_mb, cfg.data.seed)):
                text = f"{story.rstrip()}\n{separator}\n"  # the format of data/raw files
                f.write(text)
                if i < 100:
                    f_small.write(text)
        tokenizer_path = str(Path(cfg.tokenizer.path).resolve())
        tokenizer_name = cfg.tokenizer.path
        if not Path(tokenizer_path).is_file():  # a fresh project: a throwaway tokenizer
            tokenizer_path = str(Path(tmp) / "tokenizer.json")
            with open(raw / "stories.txt", encoding="utf-8") as f:
                save_tokenizer(train_tokenizer(f, cfg.tokenizer, show_progress=False),
                               tokenizer_path)
            tokenizer_name = f"a throwaway {cfg.tokenizer.type} tokenizer (none trained yet)"
        overrides = {"data.raw_dir": str(raw), "data.val_path": "",
                     "data.processed_dir": str(Path(tmp) / "processed"),
                     "tokenizer.path": tokenizer_path, "model.max_length": "8",
                     **({"data.stride": "8"} if cfg.model.architecture == "gpt" else {})}
        config_path = str(Path(cfg.path).resolve())  # the child runs in the project folder
        command = [sys.executable, "-c", PREPARE_TIMER, config_path, json.dumps(overrides),
                   str(small), str((raw / "stories.txt").stat().st_size)]
        runs = []
        for _ in range(repeats):
            out = subprocess.run(command, capture_output=True, text=True, check=True,
                                 cwd=Path(__file__).resolve().parent)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    full = [run["full"]["bytes"] / 1e6 / run["full"]["seconds"] for run in runs]
    running = [(run["full"]["bytes"] - run["small"]["bytes"]) / 1e6
               / max(1e-9, run["full"]["seconds"] - run["small"]["seconds"]) for run in runs]
    return {"mb": runs[0]["full"]["bytes"] / 1e6, "mb_per_sec": statistics.median(full),
            "mb_per_sec_running": statistics.median(running),
            "startup_seconds": statistics.median(run["small"]["seconds"] for run in runs),
            "repeats": runs, "processes": runs[0]["processes"], "tokenizer": tokenizer_name}


# ---- generation ----


def bench_generation(model: torch.nn.Module, new_tokens: int, repeats: int,
                     start_id: int = 0) -> dict[str, Any] | None:
    """Tokens/s of greedy generation, with and without the KV cache: gpt from one token, t5's
    decoder for a 16-token input (from `start_id`, its start token). None for bert, which
    does not generate (it fills in all its masks in one pass).

    The model is used as `make generate` uses it: float32 weights, no autocast.
    """
    if model.config.architecture == "bert":
        return None
    model.eval()
    times: dict[bool, list[float]] = {True: [], False: []}
    greedy = GenerationConfig(max_new_tokens=new_tokens, temperature=0.0, repetition_penalty=1.0)
    warm_up = dataclasses.replace(greedy, max_new_tokens=8)

    def generate(settings: GenerationConfig, use_cache: bool) -> int:
        if model.config.architecture == "t5":
            from runtime.seq2seq import generate_seq2seq

            tokens = generate_seq2seq(model, list(range(16)), settings, start_id,
                                      use_cache=use_cache)
        else:
            from runtime.sampling import generate_tokens

            tokens = generate_tokens(model, [0], settings, use_cache=use_cache)
        return len(list(tokens))

    for use_cache in times:
        generate(warm_up, use_cache)
    for r in range(repeats):
        for use_cache in ((True, False) if r % 2 == 0 else (False, True)):
            start = time.perf_counter()
            n = generate(greedy, use_cache)
            times[use_cache].append(n / (time.perf_counter() - start))
    cached, uncached = statistics.median(times[True]), statistics.median(times[False])
    return {"new_tokens": new_tokens, "kv_cache_tokens_per_sec": cached,
            "no_cache_tokens_per_sec": uncached, "kv_cache_speedup": cached / uncached,
            "repeats": {"kv_cache": times[True], "no_cache": times[False]}}


def objective_tokenizer(cfg: Config, vocab_size: int,
                        size_mb: float = 1.0) -> tuple[Tokenizer | None, str]:
    """The tokenizer bert's and t5's objectives take their special tokens from: the project's
    (when its vocabulary fits the model's), else a throwaway one trained on generated stories
    (in memory: nothing is left behind). gpt needs none."""
    if cfg.model.architecture == "gpt":
        return None, ""
    from tokenizer.load import load_tokenizer

    if Path(cfg.tokenizer.path).is_file():
        tokenizer = load_tokenizer(cfg.tokenizer.path)
        if tokenizer.get_vocab_size() <= vocab_size:
            return tokenizer, "trained tokenizer"
    from corpus.sample import generate_corpus
    from tokenizer.train import train_tokenizer

    return (train_tokenizer(generate_corpus(size_mb, cfg.data.seed), cfg.tokenizer,
                            show_progress=False),
            f"a throwaway {cfg.tokenizer.type} tokenizer (none trained yet)")


# ---- putting it together ----


def load_bench_config(args: argparse.Namespace) -> Config:
    """llm.config.js with --preset's shape, then the explicit --section.key overrides."""
    explicit = {dest.removeprefix("override:"): value for dest, value in vars(args).items()
                if dest.startswith("override:") and value is not None}
    overrides: dict[str, str] = {}
    architecture = load_config(args.config).model.architecture
    has = lambda key: architecture in ONLY_FOR.get(("model", key), (architecture,))  # noqa: E731
    if args.preset:
        if args.preset not in PRESETS:
            raise ConfigurationError(f"unknown preset '{args.preset}'",
                                     f"use one of: {', '.join(PRESETS)}")
        shape = PRESETS[args.preset]
        overrides = {f"model.{key}": str(shape[key]) for key in SHAPE_KEYS
                     if key != "vocab_size" and has(key)}  # bert, t5: no kv_heads
        overrides["model.preset"] = args.preset
        overrides["tokenizer.vocab_size"] = str(shape["vocab_size"])
    overrides.update(explicit)
    if "model.max_length" in overrides and "data.stride" not in explicit and \
            architecture == "gpt":  # (bert and t5 have no stride)
        overrides["data.stride"] = overrides["model.max_length"]  # stride <= context
    return load_config(args.config, overrides)


def vocab_size_for(cfg: Config, args: argparse.Namespace) -> tuple[int, str]:
    """The trained tokenizer's size for this project's own model, else tokenizer.vocab_size."""
    explicit = getattr(args, "override:tokenizer.vocab_size") is not None
    if not args.preset and not explicit and Path(cfg.tokenizer.path).is_file():
        from tokenizer.load import load_tokenizer

        return load_tokenizer(cfg.tokenizer.path).get_vocab_size(), "trained tokenizer"
    return cfg.tokenizer.vocab_size, "tokenizer.vocab_size"


def training_tokens(cfg: Config, vocab_size: int) -> tuple[np.ndarray, str]:
    """data/processed/train.bin when it was made for this vocabulary, else random token ids."""
    from data.splits import load_split, read_meta

    needed = cfg.training.batch_size * (cfg.model.max_length + 1)
    with contextlib.suppress(Exception):  # no, partial or stale data: use random ids
        if read_meta(cfg.data.processed_dir)["vocab_size"] == vocab_size:
            tokens = load_split(cfg.data.processed_dir, "train")
            if len(tokens) >= needed:
                return tokens, f"{cfg.data.processed_dir}/train.bin"
    rng = np.random.default_rng(0)
    dtype = np.uint16 if vocab_size <= 2**16 else np.uint32
    return rng.integers(0, vocab_size, size=max(needed * 4, 1 << 20), dtype=dtype), \
        "random token ids"


def print_report(report: dict[str, Any]) -> None:
    def row(name: str, value: str) -> None:
        print(f"  {name:<34}{value}")

    m, s = report["model"], report["setup"]
    print(f"\nmodel '{m['preset']}': {m['params'] / 1e6:.2f}M parameters ({m['layers']} layers, "
          f"dim {m['dim']}, {m['heads']} heads, context {m['max_length']}, vocab "
          f"{m['vocab_size']} from the {s['vocab_from']})")
    print(f"batch {s['batch_size']} x {m['max_length']} tokens x {s['gradient_accumulation']} "
          f"accumulation = {s['tokens_per_step']:,} tokens per step; data: {s['data']}")
    print(f"{s['warmup']} warm-up steps, then medians of {s['repeats']} repeats x {s['steps']} "
          f"steps; torch {report['machine']['torch']}")
    tr = report.get("training")
    if tr:
        print("\ntraining")
        row("tokens/s", f"{tr['tokens_per_sec']:,.0f}")
        row("step time", f"{tr['step_seconds']:.3f} s  ({tr['optimizer']})")
        total = sum(tr["split_seconds"].values())
        for name, sec in tr["split_seconds"].items():
            label = "optimizer (+ clipping)" if name == "optimizer" else name
            row(f"  {label}", f"{sec:.3f} s  {100 * sec / total:5.1f}%")
        row("FLOPs per token", f"{tr['flops_per_token'] / 1e6:,.1f} M  ({tr['flops_formula']})")
        row("achieved", f"{tr['achieved_flops'] / 1e9:,.1f} GFLOP/s")
        row(f"matmul peak ({tr['matmul_peak_dtype']}, measured)",
            f"{tr['matmul_peak_flops'] / 1e9:,.1f} GFLOP/s")
        row("MFU", f"{100 * tr['mfu']:.1f}%")
        memory = tr["peak_memory_mb"]
        text = "n/a" if memory is None else f"{memory:,.0f} MB ({tr['memory_kind']})"
        if tr.get("rss_before_model_mb"):
            text += f", {tr['rss_before_model_mb']:,.0f} MB before the model was built"
        row("peak memory", text)
        if "fp32_eager" in tr:
            base = tr["fp32_eager"]
            row("plain fp32 eager, same run", f"{base['tokens_per_sec']:,.0f} tokens/s -> "
                f"this setup is {base['speedup']:.2f}x faster")
    lg = report.get("logging")
    if lg:
        print("\nlogging every step (progress records, metrics.jsonl"
              f"{', TensorBoard' if lg['tensorboard'] else ''}; {lg['steps_timed']} steps each)")
        row("step time with logging", f"{1e3 * lg['step_seconds_logging']:.2f} ms")
        row("step time without", f"{1e3 * lg['step_seconds_none']:.2f} ms  -> logging adds "
            f"{100 * lg['overhead']:+.1f}%")
        row("CPU time per step (all threads)", f"{1e3 * lg['cpu_seconds_logging']:.2f} ms with, "
            f"{1e3 * lg['cpu_seconds_none']:.2f} ms without ({100 * lg['cpu_overhead']:+.1f}%)")
        row("the loop's time in the callbacks", f"{1e6 * lg['loop_seconds_in_logging']:.0f} us "
            f"per step ({100 * lg['loop_share']:.2f}% of a step)")
    d = report.get("data_preparation")
    if d:
        print("\ndata preparation (make data)")
        row(f"{d['mb']:.1f} MB of generated stories",
            f"{d['mb_per_sec']:.1f} MB/s ({d['processes']} process"
            f"{'es' if d['processes'] > 1 else ''}, start-up included; {d['tokenizer']})")
        row("once running (large corpora)", f"{d['mb_per_sec_running']:.1f} MB/s, after "
            f"{d['startup_seconds']:.1f} s of start-up")
    g = report.get("generation")
    if "generation" in report and g is None:
        print("\ngeneration: none to time (bert fills in all its [MASK]s in one forward pass; "
              "that speed is `make eval`'s)")
    if g:
        print(f"\ngeneration ({g['new_tokens']} new tokens, greedy, float32 weights like "
              "make generate)")
        row("with the KV cache", f"{g['kv_cache_tokens_per_sec']:,.1f} tokens/s")
        row("without", f"{g['no_cache_tokens_per_sec']:,.1f} tokens/s  -> the cache is "
            f"{g['kv_cache_speedup']:.1f}x faster")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python bench.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", help=f"benchmark a preset's shape ({', '.join(PRESETS)}) "
                        "instead of llm.config.js's model; the batch size stays the config's")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per repeat (5)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; medians are shown (3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (2)")
    parser.add_argument("--compare", action="store_true",
                        help="also time plain fp32 eager training, interleaved, for the speedup")
    parser.add_argument("--logging", action="store_true",
                        help="also time logging every step (with and without, interleaved)")
    parser.add_argument("--data-mb", type=float, default=20.0,
                        help="MB of generated text for the data preparation benchmark (20)")
    parser.add_argument("--new-tokens", type=int, default=256,
                        help="tokens to generate in the generation benchmark (256)")
    parser.add_argument("--skip", default="", metavar="PARTS",
                        help="comma-separated parts to skip: train, data, generate")
    parser.add_argument("--json", metavar="PATH", help="where to write the results "
                        "(default: logs/bench.json)")
    add_config_arguments(parser)
    return parser


def describe_setup(cfg: Config, model_config: ModelConfig, device: torch.device, threads: int,
                   precision: str, data_source: str, vocab_from: str,
                   args: argparse.Namespace) -> dict[str, Any]:
    """The machine, model and settings part of the report."""
    t, m = cfg.training, model_config
    return {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "device": str(device), "threads": threads, "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "model": {"preset": m.preset, "layers": m.layers, "dim": m.dim, "heads": m.heads,
                  "kv_heads": m.kv_heads, "mlp_dim": m.mlp_dim, "max_length": m.max_length,
                  "vocab_size": m.vocab_size, "params": count_parameters(m)},
        "setup": {"precision": precision, "precision_setting": t.precision,
                  "compile": t.compile, "gradient_checkpointing": t.gradient_checkpointing,
                  "batch_size": t.batch_size, "gradient_accumulation": t.gradient_accumulation,
                  "tokens_per_step": t.batch_size * t.gradient_accumulation * m.max_length,
                  "data": data_source, "vocab_from": vocab_from,
                  "steps": args.steps, "repeats": args.repeats, "warmup": args.warmup},
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    if skip - {"train", "data", "generate"}:
        raise ConfigurationError(f"--skip {args.skip}: unknown part(s) "
                                 f"{', '.join(sorted(skip - {'train', 'data', 'generate'}))}",
                                 "use train, data and/or generate, e.g. --skip data,generate")
    if min(args.steps, args.repeats) < 1 or args.warmup < 0:
        raise ConfigurationError("--steps and --repeats must be >= 1, --warmup >= 0",
                                 "e.g. --steps 5 --repeats 3 --warmup 2")
    cfg = load_bench_config(args)
    t = cfg.training

    threads = set_threads(t.threads)
    device = pick_device(t.device)
    vocab_size, vocab_from = vocab_size_for(cfg, args)
    model_config = dataclasses.replace(cfg.model, vocab_size=vocab_size)
    precision = pick_precision(t.precision, device, model_config.dim)
    tokens, data_source = training_tokens(cfg, vocab_size)
    tokenizer, _ = objective_tokenizer(cfg, vocab_size)
    print(f"Fast path: {describe(device, precision, threads, t.compile, t.gradient_checkpointing)}"
          f" (training.precision: '{t.precision}')")

    report = describe_setup(cfg, model_config, device, threads, precision, data_source,
                            vocab_from, args)
    model = None
    if "train" not in skip:
        print("Timing training steps...", flush=True)
        training = bench_training(cfg, model_config, tokens, device, precision, args, tokenizer)
        model = training.pop("_trainer").model
        report["training"] = training
        report["model"]["params"] = training["params"]
    if args.logging:
        print("Timing logging at training.log_interval 1...", flush=True)
        report["logging"] = bench_logging(cfg, model_config, tokens, device, precision, args,
                                          tokenizer)
    if "generate" not in skip:
        print(f"Timing generation ({args.new_tokens} tokens, with and without the KV cache)...",
              flush=True)
        if model is None:
            model = build_model(model_config, t, device)
        start = 0
        if model_config.architecture == "t5":  # its decoder starts from the padding token
            from runtime.objectives import t5_special_ids

            start = t5_special_ids(cfg, tokenizer)["start"]
        report["generation"] = bench_generation(model, args.new_tokens, args.repeats, start)
    if "data" not in skip:
        print(f"Timing data preparation ({args.data_mb:g} MB of generated stories)...",
              flush=True)
        report["data_preparation"] = bench_data(cfg, args.data_mb, args.repeats)

    print_report(report)
    path = Path(args.json or Path(cfg.logging.dir) / "bench.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nWrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
