"""The optimizer (AdamW, Adafactor, or Muon with AdamW, with decay/no-decay groups) and the
learning-rate schedule (warmup + cosine).

The schedule is a pure function of the step, so resuming needs nothing but the step number.
"""

from __future__ import annotations

import math

import torch

from config import TrainingConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """cfg.optimizer over the model's parameters: matrices (embeddings, linear weights) decay and
    norm weights do not.

    Decaying a norm's scale only pulls it towards 0 and hurts; matrices are what overfit.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "muon":
        hidden = set(hidden_matrices(model))
        muon = [p for p in params if p in hidden]
        return MuonWithAdamW(muon, _decay_groups([p for p in params if p not in hidden], cfg),
                             cfg)
    groups = _decay_groups(params, cfg)
    if cfg.optimizer == "adafactor":
        # T5's optimizer. Each step moves a weight by about lr times the weight's own size (its
        # root mean square), where AdamW moves every weight by about lr. That matters for T5:
        # its shared embedding starts at std 1.0 (and is also the output layer) while its
        # matrices start 20-50x smaller, so no single AdamW rate suits both; on the KJV text
        # the nano preset's validation loss after 400 steps was 4.52 with Adafactor (lr 1e-2)
        # against 4.88 with AdamW (lr 3e-3). torch's Adafactor takes min(lr, 1/sqrt(step)) as
        # its relative step, so the warmup + cosine schedule below still applies; it has no
        # momentum and factors its second moments (a row and a column per matrix).
        return torch.optim.Adafactor(groups, lr=cfg.learning_rate, foreach=True)
    return _adamw(groups, cfg)


def _decay_groups(params: list[torch.nn.Parameter], cfg: TrainingConfig) -> list[dict]:
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def _adamw(groups: list[dict], cfg: TrainingConfig) -> torch.optim.AdamW:
    # fused runs the whole update in one kernel per device (CUDA, CPU and MPS in torch >= 2.4);
    # foreach, the fallback, batches it across tensors. On a 2-core laptop-class CPU the fused
    # step took 7.8 ms against 38 ms for foreach on the tiny preset (~1% of a training step); on
    # CUDA it also saves many kernel launches.
    kwargs = {"lr": cfg.learning_rate, "betas": (cfg.beta1, cfg.beta2)}
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # an older torch or a device without it
        return torch.optim.AdamW(groups, foreach=True, **kwargs)


def hidden_matrices(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The weights of the linear layers inside the network: Muon's share (modded-nanogpt's
    split). Not the embeddings, nor the output head that turns vectors into token scores
    (tied to the embedding or as wide as the vocabulary), nor norms and biases."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    return [m.weight for m in model.modules()
            if isinstance(m, torch.nn.Linear) and id(m.weight) not in embeddings
            and m.out_features != vocab]


class MuonWithAdamW(torch.optim.Optimizer):
    """torch.optim.Muon for the hidden matrices, AdamW for everything else, as one optimizer:
    one state_dict (so checkpoints and bit-exact resume work as for AdamW) and one list of
    param_groups (the trainer sets every group's lr from the schedule).

    Muon keeps a momentum of each matrix's gradient and steps along its orthogonalised version
    (5 Newton-Schulz iterations, in bf16): every direction of the matrix moves by the same amount,
    where AdamW's steps are dominated by a few. adjust_lr_fn 'match_rms_adamw' (Moonshot's) scales
    each step to the size AdamW's would have (0.2 * sqrt(max(rows, cols))), so training's
    learning_rate and weight_decay serve both halves.
    """

    def __init__(self, muon_params: list[torch.nn.Parameter], adamw_groups: list[dict],
                 cfg: TrainingConfig) -> None:
        self.muon = torch.optim.Muon(muon_params, lr=cfg.learning_rate,
                                     weight_decay=cfg.weight_decay, momentum=cfg.muon_momentum,
                                     adjust_lr_fn="match_rms_adamw")
        self.adamw = _adamw(adamw_groups, cfg)
        super().__init__(self.muon.param_groups + self.adamw.param_groups, {})
        self._share_groups_and_state()

    def _share_groups_and_state(self) -> None:
        """Both inner optimizers work on this one's groups and state (load_state_dict replaces
        them: share the new ones)."""
        split = len(self.muon.param_groups)
        self.muon.param_groups = self.param_groups[:split]
        self.adamw.param_groups = self.param_groups[split:]
        self.muon.state = self.adamw.state = self.state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._share_groups_and_state()

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        self.muon.step()
        self.adamw.step()


def lr_at(step: int, cfg: TrainingConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then cosine to min_lr."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    if step >= cfg.max_steps:
        return cfg.min_lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.min_lr + cosine * (cfg.learning_rate - cfg.min_lr)
