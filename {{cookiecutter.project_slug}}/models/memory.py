"""How much memory one device needs to train a model: arithmetic, no allocation.

    estimate = training_memory(config, params, batch_size=4, precision="bf16",
                               parallelism="fsdp", devices=8)
    estimate.total / 1e9          # GB on each device

`make summary` prints it for every preset, and `make train` compares it with the device before
starting. It is an estimate (within about 20%: the allocator's caching, CUDA's own context and
temporary buffers come on top); `make bench` measures the real peak.

What one device holds while training with AdamW:
- the training state: fp32 weights (4 bytes per parameter), their gradients (4) and AdamW's two
  moments (8): 16 bytes per parameter. Mixed precision (bf16) computes in bf16 but updates fp32
  weights, so it does not shrink this part; it adds bf16 copies of the weights for the forward
  pass. One process and DDP keep all of it on every device; FSDP splits it over the devices
  and gathers each block's weights (in bf16 with bf16 precision) only while that block runs.
  Adafactor (t5's optimizer) keeps far less than AdamW's 8 bytes (a row and a column of
  second moments per matrix, no momentum): for it these figures are an upper bound.
- activations: what each block keeps for the backward pass, for one micro-batch
  (batch_size x max_length tokens). Gradient checkpointing keeps only each block's input and
  recomputes the rest. They are the same under DDP and FSDP: each device runs its own
  micro-batch through the whole model.
- the logits of the micro-batch and their gradient (batch_size x max_length x vocab_size);
  bert's only for the hidden tokens, the only ones its MLM head runs on
  (models/architectures/bert.py): `scored_share` of the positions, objective.mask_probability.

With LoRA (models/lora.py) only the adapters are trained: gradients and AdamW's moments are
kept for them alone (12 bytes per trainable parameter), while every weight is still held (4
bytes each) and the activations are the same (the backward pass still runs through every
block to reach the adapters).
"""

from __future__ import annotations

import dataclasses

from config import ModelConfig

PARALLELISMS = ("none", "ddp", "fsdp")
# bert's share of positions that reach the MLM head when the caller does not say: the most that
# objective.mask_probability allows, so the estimate is never short.
MAX_MASKED_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes on one device."""

    weights: int
    gradients: int
    optimizer: int
    activations: int  # the blocks' saved tensors, the logits, bf16 weight copies

    @property
    def state(self) -> int:
        """Weights, gradients and optimizer moments: what parallelism can split."""
        return self.weights + self.gradients + self.optimizer

    @property
    def total(self) -> int:
        return self.state + self.activations


def blocks_of(c: ModelConfig) -> int:
    """Transformer blocks the model runs: t5 has an encoder and a decoder of c.layers each."""
    return 2 * c.layers if c.architecture == "t5" else c.layers


def block_parameters(c: ModelConfig, params: int) -> int:
    """Parameters of one block: the model's, less its token embedding, over its blocks."""
    return (params - c.vocab_size * c.dim) // blocks_of(c)


def activation_bytes(c: ModelConfig, batch_size: int, precision: str,
                     checkpointing: bool = False, scored_share: float | None = None) -> int:
    """What the forward pass of one micro-batch keeps for the backward pass, in bytes.

    scored_share: bert's objective.mask_probability (default MAX_MASKED_SHARE); every other
    architecture scores all positions."""
    tokens = batch_size * c.max_length
    compute = 4 if precision == "fp32" else 2  # bytes per element in the compute dtype
    # Per block and token: the two norms' inputs (the residual stream, fp32 under autocast), and
    # in the compute dtype the norms' outputs, q, k and v (k and v after grouped-query attention
    # repeats them), the attention output and o_proj's input: 2 + 7 x dim; a gated MLP's gate,
    # up, activation and their product (gpt's SwiGLU, t5's gated GELU, modernbert's GeGLU):
    # 4 x mlp_dim; the original bert's plain GELU MLP its input and output: 2 x mlp_dim. (t5's
    # decoder blocks also attend to the encoder: about one more attention's worth, counted as a
    # block.)
    plain_mlp = c.architecture == "bert" and c.variant == "bert"
    mlp = (2 if plain_mlp else 4) * c.mlp_dim
    block = 2 * c.dim * 4 + (7 * c.dim + mlp) * compute
    if checkpointing:  # each block's input, plus one block recomputed at a time
        blocks = blocks_of(c) * c.dim * 4 + block
    else:
        blocks = blocks_of(c) * block
    # Logits in the compute dtype, their fp32 copy for the loss (none in fp32), the loss's
    # saved log-probabilities and the logits' gradient: bert's for its hidden tokens only, with
    # the MLM head's dense, GELU and LayerNorm outputs before them.
    logits = c.vocab_size * (compute + (0 if compute == 4 else 4) + 4 + 4)
    if c.architecture == "bert":
        share = MAX_MASKED_SHARE if scored_share is None else scored_share
        logits = share * (logits + 3 * c.dim * compute)
    return round(tokens * (blocks + logits + 2 * c.dim * 4))  # + embedding output, final norm


def training_memory(c: ModelConfig, params: int, batch_size: int, precision: str,
                    parallelism: str, devices: int = 1, checkpointing: bool = False,
                    trainable: int | None = None,
                    scored_share: float | None = None) -> MemoryEstimate:
    """What one of `devices` devices holds while training `c` (`params` parameters) with AdamW.

    precision: 'bf16', 'fp16' or 'fp32'; parallelism: 'none', 'ddp' or 'fsdp'. trainable: the
    parameters that get gradients and optimizer state (default: all; LoRA: the adapters).
    scored_share: bert's objective.mask_probability (see activation_bytes).
    """
    trainable = params if trainable is None else trainable
    if parallelism not in PARALLELISMS:
        raise ValueError(f"parallelism must be one of {PARALLELISMS}, got {parallelism!r}")
    shards = devices if parallelism == "fsdp" else 1
    half = precision != "fp32"
    if parallelism == "fsdp":
        # Weights gathered while a block runs (FSDP also fetches the next block ahead), plus the
        # embedding/output layer, which the model's root group holds, in the compute dtype.
        gathered = (2 * block_parameters(c, params) + c.vocab_size * c.dim) * (2 if half else 4)
    else:
        gathered = 2 * params if half else 0  # autocast's bf16 copies of every weight
    return MemoryEstimate(
        weights=4 * params // shards,
        gradients=4 * trainable // shards,
        optimizer=8 * trainable // shards,
        activations=activation_bytes(c, batch_size, precision, checkpointing,
                                     scored_share) + gathered,
    )


def gigabytes(n_bytes: float) -> str:
    """4.2e9 -> '4.2', 0.031e9 -> '0.03'."""
    gb = n_bytes / 1e9
    return f"{gb:.1f}" if gb >= 1 else f"{gb:.2f}"


def memory_table(models: dict[str, tuple], scored_share: float | None = None) -> list[str]:
    """`make summary`'s memory table: name -> (config, parameters, micro-batch size[, trainable
    parameters, when not all of them: LoRA]); scored_share: bert's objective.mask_probability."""
    lines = [
        "Training memory per device, estimated in GB (models/memory.py). State: weights,",
        "gradients and AdamW's moments, 16 bytes per parameter in fp32 (also with bf16, which",
        "computes in bf16 but updates fp32 weights). Activations: one micro-batch",
        "(batch_size x context). One device and DDP hold the whole state on every device; FSDP",
        "over N devices holds 1/N of it.",
        "",
        f"{'':12}{'state':>7}{'activations':>14}{'one device/DDP':>17}{'FSDP bf16, N devices':>25}",
        f"{'':12}{'':>7}{'bf16':>7}{'fp32':>7}{'bf16':>9}{'fp32':>8}"
        + "".join(f"{f'N={n}':>8}" for n in (2, 4, 8)) + f"{'batch':>7}",
    ]
    lines.append("-" * len(lines[-1]))
    for name, (config, params, batch, *lora) in models.items():
        trainable = lora[0] if lora else None
        ddp = {p: training_memory(config, params, batch, p, "ddp", trainable=trainable,
                                  scored_share=scored_share) for p in ("bf16", "fp32")}
        fsdp = [training_memory(config, params, batch, "bf16", "fsdp", n, trainable=trainable,
                                scored_share=scored_share) for n in (2, 4, 8)]
        activations = {p: activation_bytes(config, batch, p, scored_share=scored_share)
                       for p in ("bf16", "fp32")}
        lines.append(f"{name:12}{gigabytes(ddp['bf16'].state):>7}"
                     f"{gigabytes(activations['bf16']):>7}{gigabytes(activations['fp32']):>7}"
                     f"{gigabytes(ddp['bf16'].total):>9}{gigabytes(ddp['fp32'].total):>8}"
                     + "".join(f"{gigabytes(e.total):>8}" for e in fsdp) + f"{batch:>7}")
    lines += [
        "",
        "`make train NPROC=N` (training.parallelism 'auto') uses DDP when 'one device/DDP' fits",
        "in 85% of each device's memory, FSDP when it does not. Less memory: a smaller",
        "training.batch_size (more gradient_accumulation), or gradient_checkpointing: true.",
    ]
    if any(len(row) > 3 for row in models.values()):
        lines += ["LoRA rows: gradients and AdamW's moments of the adapters only",
                  "(models/lora.py); the weights and the activations stay."]
    return lines
