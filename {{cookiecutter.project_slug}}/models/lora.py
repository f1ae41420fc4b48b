"""LoRA: finetune a model by training small low-rank adapters, with its own weights frozen.

    apply_lora(model, rank=8, alpha=16)      # wraps q/k/v/o and gate/up/down, freezes the rest
    ...train: only the lora_A / lora_B matrices have gradients and optimizer state...
    state["lora"] = lora_settings(model)     # a checkpoint says it holds adapters
    merge_lora(model)                        # plain nn.Linear again: W + B @ A * alpha / rank

Each wrapped projection computes W x + (alpha / rank) * B (A x), with W frozen, A (rank, in)
and B (out, rank). B starts at zero, so before the first step the model is exactly the one it
wraps; A starts like a Linear layer's weight (Kaiming uniform), so B gets gradients from the
start (Hu et al. 2021, "LoRA"; litgpt's lora.py does the same). A rank-8 adapter on a 576 x 576
projection trains 9,216 numbers instead of 331,776; AdamW keeps state for those only.

Written here rather than taken from peft: this is the whole of it (plain LoRA, ~100 lines), the
model keeps its own tensor names (a wrapped layer's weight is still `...q_proj.weight`, its
adapters `...q_proj.lora_A` / `lora_B`), and merging gives back exactly the original modules,
so export, GGUF and every other reader of a state dict need nothing new. Wrap a model whose
weights are in place (built normally, or loaded): the adapters are initialised when they are
made, so a model built on the meta device is materialised first.

How a checkpoint holds adapters: its state["model"] has the frozen weights and the lora_A /
lora_B tensors, and state["lora"] = {"rank", "alpha", "targets"} (lora_settings).
runtime.checkpoints.load_trained_model sees state["lora"], wraps the model the same way, loads
the state and merges, so eval, generate, chat and export get a plain model.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# The projections of models/architectures/gpt.py that get adapters: attention and MLP. The
# embedding, lm_head and the norms stay frozen and unchanged.
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update: y = W x + b + scaling * B (A x).

    It holds the wrapped layer's own weight and bias (the same tensors, under the same names)
    and adds lora_A (rank, in) and lora_B (out, rank)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if rank <= 0:
            raise ValueError(f"LoRA rank must be > 0, got {rank}")
        self.in_features, self.out_features = base.in_features, base.out_features
        # The same Parameters as the wrapped layer: no copy, and the same state-dict names.
        self.register_parameter("weight", base.weight)
        self.register_parameter("bias", base.bias)
        for p in (self.weight, self.bias):
            if p is not None:
                p.requires_grad_(False)
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        like = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **like))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, **like))
        if self.lora_A.device.type != "meta":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own init
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)  # (..., out)
        return F.linear(x, self.weight, self.bias) + update * self.scaling

    def merged(self) -> nn.Linear:
        """A plain nn.Linear computing the same function (in fp32, then the weight's dtype)."""
        delta = (self.lora_B.float() @ self.lora_A.float()) * self.scaling  # (out, in)
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.weight.float() + delta)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear


def _wrapped_modules(model: nn.Module, targets: tuple[str, ...]
                     ) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, module) of every module whose attribute name is in targets."""
    found = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if name in targets:
                found.append((parent, name, child))
    return found


def apply_lora(model: nn.Module, rank: int, alpha: float | None = None, dropout: float = 0.0,
               targets: tuple[str, ...] = TARGETS) -> nn.Module:
    """Wrap each target projection in a LoRALinear, in place, and freeze every other parameter.
    alpha: the update's scale numerator (default 2 x rank, litgpt's 16 for rank 8). Returns
    the model."""
    alpha = 2.0 * rank if alpha is None else float(alpha)
    if lora_settings(model) is not None:
        raise ValueError("the model already has LoRA adapters (merge_lora first)")
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = 0
    for parent, name, child in _wrapped_modules(model, tuple(targets)):
        if isinstance(child, nn.Linear):
            setattr(parent, name, LoRALinear(child, rank, alpha, dropout))
            wrapped += 1
    if not wrapped:
        raise ValueError(f"no nn.Linear named {', '.join(targets)} in the model")
    model.lora = {"rank": rank, "alpha": alpha, "targets": list(targets)}  # lora_settings()
    return model


def lora_settings(model: nn.Module) -> dict | None:
    """What a checkpoint of this model records in state["lora"] (None: no adapters)."""
    return getattr(model, "lora", None)


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by the plain nn.Linear it computes, in place: the model's
    state-dict keys are then exactly those it had before apply_lora. Trainable again
    everywhere (as a model built from scratch is)."""
    for parent, name, child in _wrapped_modules(model, tuple(getattr(model, "lora", {}).get(
            "targets", TARGETS))):
        if isinstance(child, LoRALinear):
            setattr(parent, name, child.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    if hasattr(model, "lora"):
        del model.lora
    return model


def trainable_parameters(model: nn.Module) -> int:
    """Parameters that get gradients (and optimizer state): with LoRA, the adapters only."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
