"""`make bench` (bench.py): it runs on a fresh project, counts FLOPs by the stated formula, takes
a preset's shape on request, and writes every number it prints to logs/bench.json.

Speed itself is never asserted here (it depends on the machine and on what else runs): that is
what the benchmark is for.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import bench
from config import ModelConfig, load_config
from conftest import ARCHITECTURE, write_project_config
from models.presets import PRESETS, count_parameters

PROJECT = Path(__file__).resolve().parents[1]

# A microscopic model and run, so the whole benchmark takes seconds.
TINY = {
    "model": {"layers": 2, "heads": 4, "kv_heads": 2, "dim": 32, "mlp_dim": 64, "max_length": 32},
    "tokenizer": {"vocab_size": 320},
    "data": {"stride": 32},
    "training": {"batch_size": 4, "threads": 1},
}


def write_project(folder: Path, changes: dict) -> None:
    """llm.config.js in `folder`, with every path inside it (nothing prepared, no tokenizer)."""
    write_project_config(folder, changes, {
        "tokenizer": {"path": str(folder / "tokenizer" / "tokenizer.json")},
        "data": {"raw_dir": str(folder / "raw"), "processed_dir": str(folder / "processed")},
        "logging": {"dir": str(folder / "logs")},
    })


@pytest.mark.skipif(ARCHITECTURE == "t5", reason="t5 counts encoder and decoder apart (test_t5)")
def test_flops_per_token_is_six_params_plus_attention() -> None:
    config = ModelConfig(architecture=ARCHITECTURE, layers=6, heads=5, kv_heads=5, dim=320,
                         mlp_dim=864, max_length=256, vocab_size=8192)
    params = count_parameters(config)
    lookups = (256 + 2) * 320 if ARCHITECTURE == "bert" else 0  # bert's positions, types
    assert bench.flops_per_token(config, params) == 6 * (params - lookups) + 12 * 6 * 320 * 256
    if ARCHITECTURE == "bert":
        # Its MLM head runs on the hidden tokens only; its output matrix is always the (tied)
        # word embedding.
        head = 8192 * 320 + 320 * 320
        assert bench.flops_per_token(config, params, scored_share=0.15) == \
            6 * (params - lookups - round(0.85 * head)) + 12 * 6 * 320 * 256
        return
    untied = ModelConfig(**{**vars(config), "tie_embeddings": False})
    params = count_parameters(untied)  # the input embedding's lookup does no matmul
    assert bench.flops_per_token(untied, params) == 6 * (params - 8192 * 320) + 12 * 6 * 320 * 256


def test_preset_flag_takes_the_presets_shape_and_explicit_keys_win(tmp_path: Path,
                                                                   monkeypatch) -> None:
    write_project(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset")
    bench.add_config_arguments(parser)

    cfg = bench.load_bench_config(parser.parse_args(["--preset", "tiny"]))
    tiny = PRESETS["tiny"]
    assert (cfg.model.dim, cfg.model.layers, cfg.model.max_length) == (
        tiny["dim"], tiny["layers"], tiny["max_length"])
    assert cfg.tokenizer.vocab_size == tiny["vocab_size"] and cfg.model.preset == "tiny"

    args = parser.parse_args(["--preset", "tiny", "--model.layers", "3"])
    assert bench.load_bench_config(args).model.layers == 3
    args = parser.parse_args(["--model.max_length", "16"])  # the stride follows the context
    if ARCHITECTURE == "gpt":  # (bert and t5 have no stride)
        assert bench.load_bench_config(args).data.stride == 16


def test_without_prepared_data_training_reads_random_ids(tmp_path: Path, monkeypatch) -> None:
    write_project(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    cfg = load_config("llm.config.js")
    tokens, source = bench.training_tokens(cfg, vocab_size=320)
    assert source == "random token ids"
    assert tokens.dtype == np.uint16 and tokens.max() < 320
    assert len(tokens) >= cfg.training.batch_size * (cfg.model.max_length + 1)


def test_the_phase_split_times_a_real_step(tmp_path: Path, monkeypatch, tiny_tokenizer) -> None:
    """The split times Trainer.train_step itself (through its timer hook), and only when asked."""
    write_project(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    cfg = load_config("llm.config.js")
    model_config = ModelConfig(**{**TINY["model"], "vocab_size": 320,
                                  "architecture": ARCHITECTURE})
    tokens = np.random.default_rng(0).integers(0, 320, size=10_000, dtype=np.uint16)
    trainer, timer = bench.make_trainer(cfg, model_config, tokens, torch.device("cpu"), "fp32",
                                        tiny_tokenizer)
    assert trainer.timer is timer
    bench.time_steps(trainer, 1)  # the throughput steps: nothing is timed
    assert set(timer.seconds.values()) == {0.0}
    before = [p.detach().clone() for p in trainer.model.parameters()]
    seconds = timer.time_step(trainer)
    assert set(seconds) == {"data", "forward", "backward", "optimizer"}
    assert all(s > 0 for s in seconds.values()) and trainer.step == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(),
                                                     strict=True))
    assert all(p.grad is None for p in trainer.model.parameters())  # zeroed like train_step


def test_matmul_peak_is_a_plausible_rate() -> None:
    peak = bench.matmul_peak(torch.device("cpu"), "fp32", repeats=1)
    assert 1e8 < peak < 1e14  # FLOP/s: a real measurement, not a constant


@pytest.mark.slow  # ~5-20 s: trains a throwaway tokenizer, runs every part, 2 subprocesses
def test_bench_runs_on_a_fresh_project_and_writes_json(tmp_path: Path, monkeypatch,
                                                       capsys) -> None:
    write_project(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--steps", "2", "--repeats", "2", "--warmup", "1", "--compare",
                       "--new-tokens", "16", "--data-mb", "0.3"]) == 0
    out = capsys.readouterr().out
    generates = ARCHITECTURE != "bert"  # bert fills in masks in one pass: nothing to time
    for line in ("tokens/s", "MFU", "peak memory", "MB/s", "plain fp32 eager",
                 "with the KV cache" if generates else "generation: none to time"):
        assert line in out

    report = json.loads((tmp_path / "logs" / "bench.json").read_text())
    training = report["training"]
    assert training["tokens_per_sec"] > 0 and 0 < training["mfu"] < 1.5
    assert set(training["split_seconds"]) == {"data", "forward", "backward", "optimizer"}
    if ARCHITECTURE != "t5":  # (t5's formula needs its input and output lengths: test_t5)
        assert training["flops_per_token"] == bench.flops_per_token(
            ModelConfig(**{**TINY["model"], "vocab_size": 320, "architecture": ARCHITECTURE,
                           "variant": load_config(tmp_path / "llm.config.js").model.variant}),
            training["params"], scored_share=training["scored_share"])
        hidden = load_config(tmp_path / "llm.config.js").objective.mask_probability
        assert training["scored_share"] == (pytest.approx(hidden, abs=0.05)
                                            if ARCHITECTURE == "bert" else 1.0)
    assert training["fp32_eager"]["speedup"] > 0
    if generates:
        assert report["generation"]["new_tokens"] == 16
        assert report["generation"]["kv_cache_tokens_per_sec"] > 0
    else:
        assert report["generation"] is None
    assert report["data_preparation"]["mb_per_sec"] > 0
    assert "throwaway" in report["data_preparation"]["tokenizer"]
    assert report["setup"]["data"] == "random token ids"
    # A fresh project stays fresh: no tokenizer or prepared data was left behind.
    assert not (tmp_path / "tokenizer").exists() and not (tmp_path / "processed").exists()


def test_logging_is_timed_with_and_without_and_leaves_no_logs(tmp_path: Path, monkeypatch,
                                                              capsys) -> None:
    """`make bench ARGS=--logging`: Trainer.fit's steps with the run's logging callbacks and
    without; the logs go to a temporary folder, never the project's."""
    write_project(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--steps", "3", "--repeats", "2", "--warmup", "1", "--logging",
                       "--skip", "train,data,generate"]) == 0
    out = capsys.readouterr().out
    assert "logging every step (progress records, metrics.jsonl, TensorBoard" in out
    assert "step time without" in out and "the loop's time in the callbacks" in out
    logging = json.loads((tmp_path / "logs" / "bench.json").read_text())["logging"]
    assert logging["steps_timed"] == 6  # 2 repeats x 3 steps, for each setup
    assert logging["step_seconds_logging"] > 0 and logging["step_seconds_none"] > 0
    assert 0 < logging["loop_seconds_in_logging"] < logging["step_seconds_logging"]
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["bench.json"]


def test_bad_arguments_are_clear_errors(tmp_path: Path, monkeypatch) -> None:
    write_project(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(bench.ConfigurationError, match="unknown part"):
        bench.main(["--skip", "everything"])
    with pytest.raises(bench.ConfigurationError, match="unknown preset"):
        bench.main(["--preset", "huge"])
