"""The fast training path: each automatic choice (precision, optimizer, compile, threads) is the
right one for the hardware, can be forced, and trains the same model as the plain path.

The CUDA choices are tested with torch.cuda's answers monkeypatched, so they run without a GPU.
"""

from __future__ import annotations

import dataclasses
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from config import ModelConfig
from conftest import ARCHITECTURE
from errors import ConfigurationError
from models.build import build_model
from runtime import device as dev
from training.optimizer import build_optimizer, hidden_matrices
from training.parallelize import compile_model
from training.trainer import Trainer, build_trainer

PROJECT = Path(__file__).resolve().parents[1]
CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


# ---- precision ----


@pytest.fixture
def cuda_gpu(monkeypatch: pytest.MonkeyPatch) -> Callable[[tuple[int, int]], None]:
    """Pretend to be an NVIDIA GPU of a given compute capability."""

    def make(capability: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.version, "hip", None)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
        # what torch says by default even where bf16 is only emulated (V100, T4)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Pretend GPU")

    return make


def test_auto_on_cuda_is_bf16_from_ampere_on_and_fp16_before(cuda_gpu) -> None:
    cuda_gpu((8, 0))  # A100
    assert dev.pick_precision("auto", CUDA) == "bf16"
    cuda_gpu((9, 0))  # H100
    assert dev.pick_precision("auto", CUDA) == "bf16"
    cuda_gpu((7, 5))  # T4: bf16 only emulated, so fp16 with loss scaling
    assert dev.pick_precision("auto", CUDA) == "fp16"
    cuda_gpu((7, 0))  # V100
    assert dev.pick_precision("auto", CUDA) == "fp16"


def test_auto_on_rocm_is_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "hip", "6.2")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.pick_precision("auto", CUDA) == "bf16"


def test_forced_precisions_are_kept_or_refused_clearly(cuda_gpu, monkeypatch) -> None:
    cuda_gpu((7, 5))
    for choice in ("bf16", "fp16", "fp32"):
        assert dev.pick_precision(choice, CUDA) == choice
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ConfigurationError, match="not supported by this GPU"):
        dev.pick_precision("bf16", CUDA)
    for where in (CPU, MPS):
        with pytest.raises(ConfigurationError, match="needs a CUDA GPU"):
            dev.pick_precision("fp16", where)
    assert dev.pick_precision("bf16", CPU, dim=16) == "bf16"  # forced wins over the threshold


def test_auto_on_cpu_uses_bf16_only_where_it_is_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: True)
    assert dev.pick_precision("auto", CPU, dim=320) == "bf16"  # tiny: ~1.9x measured
    assert dev.pick_precision("auto", CPU, dim=128) == "bf16"  # nano: ~1.2-1.5x
    assert dev.pick_precision("auto", CPU, dim=dev.CPU_BF16_MIN_DIM) == "bf16"
    assert dev.pick_precision("auto", CPU, dim=32) == "fp32"  # slower in bf16 (0.93x)
    assert dev.pick_precision("auto", CPU) == "bf16"  # width unknown: the hardware decides
    assert dev.pick_precision("auto", MPS) == "bf16"
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: False)
    assert dev.pick_precision("auto", CPU, dim=320) == "fp32"
    assert dev.pick_precision("auto", MPS) == "fp32"


def test_cpu_bf16_detection_reads_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev, "_apple_has_bf16", lambda: False)
    for flags, fast in (({"avx2", "avx512f"}, False), ({"avx512_bf16"}, True),
                        ({"amx_bf16", "amx_tile"}, True), (set(), False)):
        monkeypatch.setattr(dev, "_cpu_flags", lambda flags=flags: flags)
        assert dev.cpu_has_fast_bf16() is fast


def test_device_auto_prefers_cuda_and_a_missing_one_is_an_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert dev.pick_device("auto").type == "cpu"
    with pytest.raises(ConfigurationError, match="no CUDA GPU"):
        dev.pick_device("cuda")


def test_the_start_line_names_every_choice(cuda_gpu) -> None:
    cuda_gpu((7, 5))
    line = dev.describe(CUDA, "fp16", threads=1, compiled=True, checkpointing=True)
    assert "Pretend GPU" in line and "fp16 + loss scaling" in line
    assert "torch.compile" in line and "gradient checkpointing" in line
    assert dev.describe(CPU, "bf16", threads=2) == "device: cpu (2 threads) | precision: bf16"


# ---- optimizer, threads, memory ----


def test_adamw_is_fused_and_falls_back_to_foreach(tiny_model_config, make_tiny_config,
                                                  monkeypatch) -> None:
    model = build_model(tiny_model_config)
    training = dataclasses.replace(make_tiny_config().training, optimizer="adamw")
    assert build_optimizer(model, training).defaults["fused"] is True
    adafactor = build_optimizer(model, dataclasses.replace(training, optimizer="adafactor"))
    assert isinstance(adafactor, torch.optim.Adafactor) and adafactor.defaults["foreach"]
    assert [g["weight_decay"] for g in adafactor.param_groups] == [training.weight_decay, 0.0]

    muon = build_optimizer(model, dataclasses.replace(training, optimizer="muon"))
    hidden = {id(p) for p in hidden_matrices(model)}
    muon_params = {id(p) for g in muon.muon.param_groups for p in g["params"]}
    adamw_params = {id(p) for g in muon.adamw.param_groups for p in g["params"]}
    # Muon: every linear layer's weight inside the network; AdamW: the embedding (and the head
    # tied to it), norms and biases; each parameter in exactly one of them.
    assert muon_params == hidden and not muon_params & adamw_params
    assert muon_params | adamw_params == {id(p) for p in model.parameters()}
    assert all(p.dim() == 2 for p in hidden_matrices(model)) and len(hidden) >= 4
    embedding = next(m for m in model.modules() if isinstance(m, torch.nn.Embedding)).weight
    assert id(embedding) in adamw_params
    assert muon.param_groups == muon.muon.param_groups + muon.adamw.param_groups

    class OldAdamW(torch.optim.AdamW):  # a torch or device without the fused kernel
        def __init__(self, *args: Any, fused: bool | None = None, **kwargs: Any) -> None:
            if fused:
                raise RuntimeError("`fused=True` requires all the params to be on CUDA")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", OldAdamW)
    optimizer = build_optimizer(model, training)
    assert optimizer.defaults["foreach"] is True and not optimizer.defaults["fused"]


def test_fp16_gets_a_loss_scaler_and_the_others_do_not(tiny_model_config, make_tiny_config,
                                                       tiny_tokenizer) -> None:
    cfg = make_tiny_config()
    tokens = np.zeros(1000, dtype=np.uint16)
    for precision, scaled in (("fp16", True), ("bf16", False), ("fp32", False)):
        trainer = make_trainer(cfg, tiny_model_config, tokens, precision, tiny_tokenizer)
        assert trainer.scaler.is_enabled() is scaled


def test_threads_default_to_physical_cores_and_can_be_forced() -> None:
    before = torch.get_num_threads()
    try:
        assert dev.set_threads(1) == 1
        cores = dev.physical_cores()
        available = len(dev.os.sched_getaffinity(0)) if hasattr(dev.os, "sched_getaffinity") \
            else cores
        assert dev.set_threads(0) == max(1, min(cores, available))
    finally:
        torch.set_num_threads(before)


def test_freed_memory_is_kept_on_glibc_only() -> None:
    glibc = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
    assert dev.reuse_freed_memory() is glibc


# ---- the step itself ----


def make_trainer(cfg: Any, model_config: ModelConfig, tokens: np.ndarray,
                 precision: str, tokenizer: Any) -> Trainer:
    """The Trainer `make train` builds (training.seed seeds the model and the batches), with
    conftest's 256-token tokenizer for the objective's special tokens."""
    return build_trainer(cfg, model_config, tokens, tokens, {}, CPU, precision,
                         tokenizer_hash="test", tokenizer=tokenizer)


def markov_tokens(n: int, vocab: int = 256, seed: int = 0) -> np.ndarray:
    """Text-like tokens with something to learn: each token is followed by one of 8 others, with
    skewed probabilities, so the loss falls from ln(vocab) towards the chain's entropy."""
    rng = np.random.default_rng(seed)
    following = rng.integers(0, vocab, size=(vocab, 8))
    cumulative = rng.dirichlet(np.full(8, 0.5), size=vocab).cumsum(axis=1)
    out = np.zeros(n, dtype=np.uint16)
    for i, u in enumerate(rng.random(n)[1:], start=1):
        row = out[i - 1]
        out[i] = following[row, min(7, int(np.searchsorted(cumulative[row], u)))]
    return out


def test_a_step_never_waits_for_the_device(tiny_model_config, make_tiny_config, tiny_tokenizer,
                                           monkeypatch) -> None:
    """No .item()/.tolist()/bool(tensor)... in our step code (each one is a GPU sync), and the
    loop reads the loss only at log intervals."""
    calls: list[str] = []
    ours = [str(PROJECT / folder) for folder in ("training", "models", "data", "evaluation",
                                                  "runtime")]

    def spy(name: str) -> None:
        original = getattr(torch.Tensor, name)

        def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_code.co_filename
            if any(caller.startswith(folder) for folder in ours):
                calls.append(f"{name} from {Path(caller).name}:{sys._getframe(1).f_lineno}")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)

    cfg = make_tiny_config(**{"training.max_steps": 10, "training.log_interval": 5,
                              "training.eval_interval": 1000,
                              "checkpoints.save_interval": 1000})
    trainer = make_trainer(cfg, tiny_model_config, markov_tokens(5000), "bf16",
                           tiny_tokenizer)
    trainer.evaluate = lambda: {"val_loss": 1.0, "is_best": False}  # not part of a step
    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        spy(name)

    loss = trainer.train_step(lr=1e-3)
    assert isinstance(loss, torch.Tensor) and calls == []
    trainer.fit()
    assert len(calls) == 2, calls  # the loss, read at steps 5 and 10
    assert all(call.startswith("item from trainer.py") for call in calls), calls


def losses(cfg: Any, tokens: np.ndarray, seed: int, precision: str, steps: int,
           tokenizer: Any) -> np.ndarray:
    cfg.training.seed = seed  # the initial weights and the batch order
    trainer = make_trainer(cfg, dataclasses.replace(cfg.model, vocab_size=256), tokens, precision,
                           tokenizer)
    return np.array([trainer.train_step(lr=3e-3).item() for _ in range(steps)])


@pytest.mark.slow
def test_bf16_trains_within_the_run_to_run_noise_of_fp32(make_tiny_config,
                                                         tiny_tokenizer) -> None:
    """200 steps: bf16 and fp32 from the same seed differ less than two fp32 seeds do.

    Compared on means over windows of 20 steps (single steps are noisy by nature).
    """
    cfg = make_tiny_config(**{"model.dim": 64, "model.heads": 4, "model.kv_heads": 2,
                              "model.mlp_dim": 128, "training.batch_size": 8})
    tokens = markov_tokens(50_000)
    threads = torch.get_num_threads()
    # One thread: with OpenMP's default spin-waiting and other programs running, 2 threads
    # made this test anywhere from 12 s to 100 s on a busy 2-core CPU; 1 thread takes ~10-15 s.
    torch.set_num_threads(1)
    try:
        fp32_a = losses(cfg, tokens, seed=1, precision="fp32", steps=200, tokenizer=tiny_tokenizer)
        fp32_b = losses(cfg, tokens, seed=2, precision="fp32", steps=200, tokenizer=tiny_tokenizer)
        bf16_a = losses(cfg, tokens, seed=1, precision="bf16", steps=200, tokenizer=tiny_tokenizer)
    finally:
        torch.set_num_threads(threads)

    def windows(curve: np.ndarray) -> np.ndarray:
        return curve.reshape(10, 20).mean(axis=1)

    # It learned something (a masked-LM or span loss falls more slowly than a next-token one).
    learned = {"gpt": 1.0, "bert": 0.2, "t5": 0.5}[ARCHITECTURE]
    assert windows(fp32_a)[-1] < windows(fp32_a)[0] - learned
    noise = np.abs(windows(fp32_a) - windows(fp32_b)).max()
    difference = np.abs(windows(bf16_a) - windows(fp32_a)).max()
    assert difference < noise, (difference, noise)


def test_gradient_checkpointing_trains_the_same_model(tiny_model_config, make_tiny_config,
                                                      tiny_tokenizer) -> None:
    cfg = make_tiny_config()
    tokens = markov_tokens(5000)
    params = []
    for checkpointing in (False, True):
        cfg.training.gradient_checkpointing = checkpointing
        trainer = make_trainer(cfg, tiny_model_config, tokens, "fp32", tiny_tokenizer)
        assert trainer.model.gradient_checkpointing is checkpointing
        for _ in range(3):
            trainer.train_step(lr=1e-3)
        params.append(torch.cat([p.detach().flatten() for p in trainer.model.parameters()]))
    torch.testing.assert_close(params[0], params[1], rtol=1e-4, atol=1e-5)


# ---- torch.compile ----


def test_compile_falls_back_in_one_line_when_the_compiler_fails_at_first_call(
        tiny_model_config, monkeypatch, capsys) -> None:
    """torch.compile is lazy: a broken toolchain raises at the first call, not at compile()."""

    def lazy_broken_compile(fn: Any, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        def compiled(*a: Any, **k: Any) -> Any:
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore")
        return compiled

    monkeypatch.setattr(torch, "compile", lazy_broken_compile)
    model = build_model(tiny_model_config)
    assert compile_model(model) is model
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No working C++ compiler" in err[0] and "uncompiled" in err[0]


def test_compile_is_used_when_the_toolchain_works(tiny_model_config, monkeypatch) -> None:
    compiled_models = []

    def fake_compile(fn: Any, *args: Any, **kwargs: Any) -> Any:
        compiled_models.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = build_model(tiny_model_config)
    assert compile_model(model) is model and compiled_models[-1] is model
