"""How the model runs on the devices of a training run: `parallelize(model, ...)`, one function.

    make train                # one process: the model as it is (compiled if training.compile)
    make train NPROC=4        # torchrun, 4 processes: DDP or FSDP2 (training.parallelism)

training.parallelism in llm.config.js:
- 'none': one process, one device.
- 'ddp': DistributedDataParallel. Every process keeps a whole copy of the model and its optimizer,
  trains on its own share of each batch, and the gradients are averaged (all-reduce) during the
  backward pass, so the copies stay identical. Checkpoints are single files written by rank 0.
- 'fsdp': FSDP2 (`fully_shard`). Each process keeps 1/N of the weights, gradients and optimizer
  state, and gathers a block's full weights only while that block runs: for models whose
  training state does not fit one device. Checkpoints are sharded, one file per process
  (runtime/sharded_checkpoints.py).
- 'auto': 'none' for one process; 'ddp' while the training state and activations fit each device
  (models/memory.py estimates them); 'fsdp' beyond.

The order of the steps in `parallelize` matters (it is torchtitan's): activation checkpointing
first, as it changes what the blocks keep; then compile, which must see the blocks as they will
run; then DDP or FSDP, which wrap the result with their communication hooks. The model files know
nothing of any of this: they are plain modules.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from config import TrainingConfig
from errors import ConfigurationError
from runtime.distributed import World

# A run may use at most this share of a device's memory by the estimate before 'auto' shards the
# model: the rest goes to what the estimate leaves out (CUDA's context, NCCL's buffers, the
# allocator's cache and fragmentation, evaluation).
FITS_FRACTION = 0.85


def choose_parallelism(requested: str, world: World, precision: str,
                       needs: Callable[[str], int], available: int | None,
                       optimizer: str = "adamw") -> str:
    """'none', 'ddp' or 'fsdp' for this run.

    needs(parallelism) is the estimated bytes per device (models/memory.py); available is one
    process's share of the device's memory (None: unknown, assume it fits); optimizer is
    training.optimizer (torch's Adafactor and Muon cannot update FSDP's sharded weights).
    """
    if not world.distributed:
        if requested in ("ddp", "fsdp"):
            print(f"training.parallelism is '{requested}', but this is one process: training "
                  "without it (start several with `make train NPROC=N`)")
        return "none"
    if requested == "none":
        raise ConfigurationError(
            f"training.parallelism is 'none', but torchrun started {world.size} processes: "
            "each would train its own copy and overwrite the others' checkpoints",
            "set training.parallelism to 'auto', 'ddp' or 'fsdp', or train in one process "
            "with plain `make train`",
        )
    choice = requested
    if requested == "auto":
        fits = available is None or needs("ddp") <= FITS_FRACTION * available
        choice = "ddp" if fits else "fsdp"
    if choice == "fsdp" and optimizer in ("adafactor", "muon"):
        # torch.optim.Adafactor's in-place updates fail on FSDP's DTensor shards (tried on
        # torch 2.13: "in-place operations that require placement changes are not supported").
        # Muon orthogonalises each whole matrix: on a shard (some of its rows) that is another
        # update, so it would train, wrongly.
        reason = ("training.parallelism is 'fsdp'" if requested == "fsdp" else
                  "a copy of the model and its training state does not fit one device, so "
                  "training.parallelism 'auto' would shard it with FSDP")
        raise ConfigurationError(
            f"{reason}, and training.optimizer '{optimizer}' cannot update sharded weights",
            "set training.optimizer to 'adamw' (FSDP shards it), or train with "
            "training.parallelism 'ddp' (a copy of the model on every device)",
        )
    if choice == "fsdp" and precision == "fp16":
        raise ConfigurationError(
            "FSDP cannot train in fp16 here: its loss scaling would need every process to agree "
            "on skipped steps (training.precision is 'fp16', or 'auto' chose it for this GPU)",
            "set training.precision to 'bf16' (GPUs from NVIDIA Ampere on) or 'fp32', or "
            "training.parallelism to 'ddp'",
        )
    return choice


def parallelize(model: nn.Module, cfg: TrainingConfig, parallelism: str, world: World,
                device: torch.device, precision: str) -> nn.Module:
    """Set the model up to train on this process's device; return what to call for a step.

    `model` itself stays the module whose parameters the optimizer updates (with FSDP, sharded in
    place). The returned module computes: `model`, its torch.compile wrapper, or DDP's wrapper.
    """
    # 1. Activation checkpointing: each block recomputes its activations during the backward
    #    pass instead of keeping them (about a third more compute for much less memory).
    model.gradient_checkpointing = cfg.gradient_checkpointing

    # 2. torch.compile. One process compiles the whole model. With DDP or FSDP, each block is
    #    compiled on its own instead: the blocks are identical, so one compilation serves all,
    #    and the communication hooks of step 3 stay outside the compiled code.
    forward_model = model
    if cfg.compile:
        if parallelism == "none":
            forward_model = compile_model(model)
        else:
            compile_blocks(model)

    # 3. Data parallelism.
    if parallelism == "ddp":
        # No syncing of buffers at each forward pass: the only ones are the RoPE tables, the same
        # everywhere (torch 2.13 renamed the option). gradient_as_bucket_view: the gradients live
        # in DDP's communication buckets rather than beside them (less memory).
        no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                          inspect.signature(DistributedDataParallel).parameters
                          else {"broadcast_buffers": False})
        forward_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            gradient_as_bucket_view=True, **no_buffer_sync)
    elif parallelism == "fsdp":
        shard(model, precision)
    return forward_model


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of a model: the items of its outermost nn.ModuleLists (GPT's
    `layers`). They are what FSDP shards one by one and what compile_blocks compiles."""
    blocks: list[nn.Module] = []
    lists: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and not any(name.startswith(f"{outer}.")
                                                         for outer in lists):
            lists.append(name)
            blocks.extend(module)
    return blocks


def shard(model: nn.Module, precision: str) -> None:
    """FSDP2: shard each block, then the rest (embedding, final norm, output layer) as the root.

    Each block is its own unit: its weights are gathered just before it runs and freed after, so
    a process holds about one block's full weights at a time besides its shards. With bf16,
    weights are gathered in bf16 (half the traffic) and gradients reduced in fp32.
    """
    try:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    except ImportError:
        raise ConfigurationError(
            f"training.parallelism 'fsdp' needs PyTorch 2.6 or later (this is {torch.__version__})",
            "upgrade torch (TORCH_SPEC=torch make setup), or set training.parallelism to 'ddp'",
        ) from None
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if precision == "bf16" else MixedPrecisionPolicy())
    blocks = transformer_blocks(model)
    for block in blocks:
        # An embedding inside a block may be called from outside the block's forward (t5's
        # relative position bias lives in its first block and serves the whole stack): as a
        # unit of its own, it gathers its weights whenever it is called.
        for module in block.modules():
            if isinstance(module, nn.Embedding):
                fully_shard(module, mp_policy=policy)
    for i, block in enumerate(blocks):
        # The backward pass starts with the last block: keep its weights gathered after forward.
        fully_shard(block, mp_policy=policy, reshard_after_forward=i < len(blocks) - 1)
    fully_shard(model, mp_policy=policy)


def no_gradient_sync(forward_model: nn.Module) -> AbstractContextManager:
    """Skip the gradient communication of a micro-batch that is not the last of its step.

    With gradient accumulation only the sum over all micro-batches is needed, so averaging after
    each one would be wasted traffic: DDP's no_sync(), FSDP's set_requires_gradient_sync(False).
    Nothing to skip in one process.
    """
    if isinstance(forward_model, DistributedDataParallel):
        return forward_model.no_sync()
    if hasattr(forward_model, "set_requires_gradient_sync"):  # an FSDP module
        return _fsdp_no_sync(forward_model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def root_weights_gathered(forward_model: nn.Module) -> Iterator[None]:
    """Under FSDP, keep the root's own weights (embeddings, final norms: not in a block) gathered
    for a while; nothing otherwise.

    FSDP gathers a module's weights when the module is called. Evaluation may call the model's
    other methods too (t5 decodes step by step through `decode`), which skip the root's call:
    its weights would still be shards there. The blocks are called as modules, so they gather
    their own as usual.
    """
    if not hasattr(forward_model, "unshard"):  # not an FSDP module
        yield
        return
    forward_model.unshard()
    try:
        yield
    finally:
        forward_model.reshard()


@contextlib.contextmanager
def _fsdp_no_sync(model: nn.Module) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


# ---- torch.compile ----


def compiler_problem(device: torch.device) -> str | None:
    """Why torch.compile cannot work here (one line), or None when it can.

    torch.compile is lazy: nothing is compiled before the first forward pass, so a missing
    compiler would only show up as a long traceback at step 1. So compile a tiny function on the
    device first, which needs the same toolchain (a C++ compiler for CPUs, Triton for GPUs).
    """
    try:
        probe = torch.compile(lambda x: torch.nn.functional.silu(x * 2.0))
        probe(torch.randn(8, 8, device=device))
    except Exception as error:  # compile support varies by platform, torch build and toolchain
        cause = getattr(error, "inner_exception", None) or error  # what the backend raised
        reason = (str(cause).strip().splitlines() or [""])[0][:150]
        return f"{type(cause).__name__}: {reason}"
    return None


def _warn_uncompiled(problem: str) -> None:
    print(f"Warning: training.compile is on, but torch.compile does not work here ({problem}); "
          "training uncompiled", file=sys.stderr)


def compile_model(model: nn.Module) -> nn.Module:
    """torch.compile, or the plain model with a one-line warning where compiling does not work.
    The model is compiled during the first training step, which is therefore slow."""
    problem = compiler_problem(next(model.parameters()).device)
    if problem is not None:
        _warn_uncompiled(problem)
        return model
    return torch.compile(model)


def compile_blocks(model: nn.Module) -> None:
    """Compile each transformer block in place (state_dict keys unchanged), or warn as above."""
    problem = compiler_problem(next(model.parameters()).device)
    if problem is not None:
        _warn_uncompiled(problem)
        return
    for block in transformer_blocks(model):
        block.compile()
