"""GPT: a decoder-only transformer in the Llama style, written to be read top to bottom.

    tokens -> embed_tokens -> layers x [x + attention(RMSNorm(x)); x + SwiGLU-MLP(RMSNorm(x))]
           -> norm -> lm_head (tied to embed_tokens) -> logits for the next token

Attention uses rotary position embeddings (RoPE, "rotate-half" layout) and optionally
grouped-query attention (kv_heads < heads). There are no biases, unless model.qkv_bias asks for
them on q/k/v (Qwen2's). The math and the tensor names match Hugging Face `LlamaForCausalLM`
(`Qwen2ForCausalLM` with qkv_bias) exactly, so exporting to it, and importing a published
checkpoint from it (`make import`), is a rename of keys (a `model.` prefix) with identical
logits; models/hf_layout.py is that rename, in both directions. Rename or reshape things here and
models/hf_layout.py needs the same change.

    python -m models.presets                   # sizes of the presets and of this project's model
    python -m training.train                  # train it (make train)
    python -m evaluation.generate --prompt "Once upon a time"    # sample from it (make generate)
    python -m pytest tests/test_model.py      # what this file promises, checked

Shapes in comments: B batch, T new tokens, S tokens attended to (cache + new), C = dim,
H query heads, Hkv key/value heads, D head size, V vocabulary.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from config import ModelConfig
from errors import ConfigurationError

# ---- rotary position embeddings (RoPE) ----


def precompute_rope(
    head_dim: int, max_length: int, theta: float, device: torch.device | str | None = None,
    llama3: tuple[float, float, float, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (max_length, head_dim), in float32.

    Rotate-half layout: element i of a head is rotated together with element i + head_dim/2, by the
    angle position * theta^(-2i/head_dim). That is Hugging Face Llama's layout, so no permutation
    of the q/k weights is needed at export. Computed in float32 even for bf16 models: at position
    2000 an angle in bf16 would be off by whole radians. llama3: (factor, low_freq_factor,
    high_freq_factor, original_max_length) of Llama 3.1/3.2's scaled frequencies (llama3_inv_freq).
    """
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    inv_freq = 1.0 / (theta**exponents)  # (D/2,)
    if llama3 is not None:
        inv_freq = llama3_inv_freq(inv_freq, *llama3)
    positions = torch.arange(max_length, dtype=torch.int64, device=device).float()  # (max_length,)
    freqs = torch.outer(positions, inv_freq)  # (max_length, D/2)
    angles = torch.cat((freqs, freqs), dim=-1)  # (max_length, D): pairs (i, i + D/2) share an angle
    return angles.cos(), angles.sin()


def llama3_inv_freq(inv_freq: torch.Tensor, factor: float, low_freq_factor: float,
                    high_freq_factor: float, original_max_length: int) -> torch.Tensor:
    """Llama 3.1's RoPE scaling (model.rope_scaling 'llama3'), as transformers computes it
    (modeling_rope_utils._compute_llama3_parameters), operation for operation.

    Frequencies whose wavelength fits many times into the original context (the fast ones) stay;
    those longer than the original context / low_freq_factor are divided by `factor` (they now
    span the longer context); those in between are blended smoothly. Nothing else changes.
    """
    low_freq_wavelen = original_max_length / low_freq_factor
    high_freq_wavelen = original_max_length / high_freq_factor
    wavelen = 2 * math.pi / inv_freq  # (D/2,)
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (original_max_length / wavelen - low_freq_factor) / (
        high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)  # (D/2,)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)  # (..., D/2) each
    return torch.cat((-x2, x1), dim=-1)  # (..., D)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys x (B, heads, T, D) by their positions' angles; cos/sin are (T, D)."""
    return x * cos + rotate_half(x) * sin


# ---- KV cache: generation without recomputing the past ----


class KVCache:
    """Keys and values of every layer for the tokens seen so far.

    With it, generating a token costs one position of compute instead of the whole context. The
    tensors are allocated once, (layers, B, Hkv, max_length, D), and filled from `pos` on; the
    model advances `pos` after each forward pass. `reset()` starts over (the memory is reused).
    """

    def __init__(
        self,
        layers: int,
        batch_size: int,
        kv_heads: int,
        head_dim: int,
        max_length: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        shape = (layers, batch_size, kv_heads, max_length, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_length = max_length
        self.pos = 0  # how many positions are filled (the same for every layer between forwards)

    def reset(self) -> None:
        self.pos = 0

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new k, v (B, Hkv, T, D); return all of them so far (B, Hkv, S, D)."""
        end = self.pos + k.size(2)
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


# ---- attention, written out where that is faster ----

# On a CPU, bf16 attention over a short context is about twice as fast written out (scores =
# q @ k^T plus a causal mask, softmax, @ v: three batched matmuls at the machine's matmul speed)
# as F.scaled_dot_product_attention's fused kernel, forward and backward (measured on a 2-core
# AMD Zen 4, avx512_bf16: tiny's B 16, 5 heads, T 256, head 64: 52 ms against 98 ms per layer;
# nano's head 32: 58 ms against 74 ms). The fused kernel skips the masked half of the scores
# and never holds all of them, so it wins from about 1024 tokens on, in float32, and on GPUs.
WRITTEN_OUT_MAX_LENGTH = 512


def writes_out_attention(q: torch.Tensor) -> bool:
    """Whether causal_attention_written_out is the faster choice for these queries (B, H, T, D)."""
    return (q.device.type == "cpu" and q.dtype == torch.bfloat16
            and q.size(2) <= WRITTEN_OUT_MAX_LENGTH)


def causal_attention_written_out(q: torch.Tensor, k: torch.Tensor,
                                 v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(D) + causal mask) v for q, k, v (B, H, T, D): what
    F.scaled_dot_product_attention(q, k, v, is_causal=True) computes, as plain matmuls."""
    B, H, T, D = q.shape
    # 0 where query i may see key j (j <= i), -inf above the diagonal: added to the scores.
    mask = torch.full((T, T), float("-inf"), device=q.device, dtype=q.dtype).triu(1)
    scores = torch.baddbmm(mask.expand(B * H, T, T), q.reshape(B * H, T, D),
                           k.reshape(B * H, T, D).transpose(1, 2), alpha=D**-0.5)  # (B*H, T, T)
    y = scores.softmax(dim=-1) @ v.reshape(B * H, T, D)  # (B*H, T, D)
    return y.view(B, H, T, D)


def in_autocast_dtype(x: torch.Tensor) -> torch.Tensor:
    """x in autocast's compute dtype while autocast is on (bf16 training), else x itself.

    Autocast casts the input of every matmul: the normalised input of q, k and v three times,
    and their three gradients back. Cast once, before the projections that share it, instead.
    """
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return x.to(torch.get_autocast_dtype(device))
    return x


# ---- the building blocks ----


class Attention(nn.Module):
    """Causal self-attention with RoPE and grouped-query attention."""

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx  # which slice of the KV cache is ours
        self.heads, self.kv_heads, self.head_dim = config.heads, config.kv_heads, config.head_dim
        bias = config.qkv_bias  # Qwen2's q/k/v biases; Llama has none
        self.q_proj = nn.Linear(config.dim, config.heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.dim, config.kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.dim, config.kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(config.heads * self.head_dim, config.dim, bias=False)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        x = in_autocast_dtype(x)
        q = self.q_proj(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B,Hkv,T,D)
        v = self.v_proj(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B,Hkv,T,D)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)  # the float32 tables, in the compute dtype
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

        # Who may attend to whom. Without a cache, queries and keys are the same T positions and
        # the causal mask is the usual lower triangle. With a cache, the keys are the S = start + T
        # positions so far: one new token may see all of them; several new tokens (a prefill
        # after earlier tokens) need the triangle shifted right by `start`, spelled out because
        # is_causal=True aligns the triangle to the top-left corner.
        mask, is_causal = None, True
        if kv_cache is not None:
            start = kv_cache.pos
            k, v = kv_cache.update(self.layer_idx, k, v)  # (B, Hkv, S, D)
            k, v = k.to(q.dtype), v.to(q.dtype)  # a no-op unless the cache dtype differs
            if T == 1:
                is_causal = False
            elif start > 0:
                is_causal = False
                mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device)
                mask = mask.tril(diagonal=start)  # (T, S): query i sees keys 0..start+i

        if self.kv_heads != self.heads:
            # Grouped-query attention: query head h uses k/v head h // (H / Hkv), as in Llama.
            repeat = self.heads // self.kv_heads
            k = k.repeat_interleave(repeat, dim=1)  # (B, H, S, D)
            v = v.repeat_interleave(repeat, dim=1)  # (B, H, S, D)

        dropout = self.dropout if self.training else 0.0
        if is_causal and dropout == 0.0 and writes_out_attention(q):
            y = causal_attention_written_out(q, k, v)  # (B, H, T, D)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout,
            )  # (B, H, T, D); scale 1/sqrt(D)
        y = y.transpose(1, 2).reshape(B, T, self.heads * self.head_dim)  # (B, T, C)
        return self.resid_dropout(self.o_proj(y))


class MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.dim, config.mlp_dim, bias=False)
        self.up_proj = nn.Linear(config.dim, config.mlp_dim, bias=False)
        self.down_proj = nn.Linear(config.mlp_dim, config.dim, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = in_autocast_dtype(x)
        return self.dropout(self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)))


class Block(nn.Module):
    """One transformer layer: pre-norm attention, then pre-norm MLP, each added to the residual."""

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        # eps given explicitly: nn.RMSNorm's default is the dtype's machine epsilon, not Llama's.
        self.input_layernorm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv_cache)  # (B, T, C)
        x = x + self.mlp(self.post_attention_layernorm(x))  # (B, T, C)
        return x


# ---- the model ----


class GPT(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size <= 0:
            raise ConfigurationError(
                "the model's vocab_size is not set (it is 0)",
                "it comes from the trained tokenizer: run `make tokenizer`, then build the model "
                "with dataclasses.replace(cfg.model, vocab_size=tokenizer.get_vocab_size())",
            )
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.layers))
        self.norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.tie_weights()

        # RoPE tables for every position, filled in by init_weights(). Not saved in checkpoints
        # (persistent=False): they are a function of the config.
        table = torch.empty(config.max_length, config.head_dim, dtype=torch.float32)
        self.register_buffer("rope_cos", table, persistent=False)  # (max_length, D)
        self.register_buffer("rope_sin", table.clone(), persistent=False)  # (max_length, D)

        # Set True to recompute each block's activations during backward: much less memory for
        # ~30% more compute (training.gradient_checkpointing in llm.config.js).
        self.gradient_checkpointing = False
        self.init_weights()

    def tie_weights(self) -> None:
        """With tie_embeddings, one matrix maps tokens to vectors and vectors back to token
        scores: fewer parameters (most of a small model's) and, at small scale, no worse a model."""
        if self.config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    @torch.no_grad()
    def init_weights(self) -> None:
        """Initialise every weight (and the RoPE tables).

        Also the way to materialise a model built on the meta device: `model.to_empty(device=...)`
        then `model.init_weights()`.
        """
        self.tie_weights()  # to_empty() gives each module its own copy: share it again
        std = 0.02
        # The output projections of attention and MLP write into the residual stream, which sums
        # 2 * layers of them: scaling their std by 1/sqrt(2 * layers) keeps the stream's variance
        # about constant with depth at initialisation (GPT-2).
        residual_std = std / math.sqrt(2 * self.config.layers)
        nn.init.normal_(self.embed_tokens.weight, mean=0.0, std=std)
        if not self.config.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=std)
        for layer in self.layers:
            attn, mlp = layer.self_attn, layer.mlp
            for linear in (attn.q_proj, attn.k_proj, attn.v_proj, mlp.gate_proj, mlp.up_proj):
                nn.init.normal_(linear.weight, mean=0.0, std=std)
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)
            for linear in (attn.o_proj, mlp.down_proj):
                nn.init.normal_(linear.weight, mean=0.0, std=residual_std)
            layer.input_layernorm.reset_parameters()  # weight = 1
            layer.post_attention_layernorm.reset_parameters()
        self.norm.reset_parameters()
        self.init_rope()

    @torch.no_grad()
    def init_rope(self) -> None:
        """Fill the RoPE tables from the config (the only state that is not a weight: a model
        whose weights were loaded from elsewhere, e.g. by `make import`, needs only this)."""
        c = self.config
        llama3 = (c.rope_scaling_factor, c.rope_low_freq_factor, c.rope_high_freq_factor,
                  c.rope_original_max_length) if c.rope_scaling == "llama3" else None
        cos, sin = precompute_rope(c.head_dim, c.max_length, c.rope_theta,
                                   device=self.rope_cos.device, llama3=llama3)
        self.rope_cos.copy_(cos)
        self.rope_sin.copy_(sin)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) for the token after each position, and the loss if targets are given.

        idx: (B, T) token ids. targets: (B, T), the inputs shifted left by one (targets[:, t] is
        the token that follows idx[:, t]; the data loader makes x = window[:-1], y = window[1:]);
        -1 marks positions not to score. kv_cache: continue after the tokens already in it.
        """
        B, T = idx.shape
        start = 0 if kv_cache is None else kv_cache.pos
        limit = self.config.max_length if kv_cache is None else min(
            self.config.max_length, kv_cache.max_length
        )
        if start + T > limit:
            raise ValueError(
                f"sequence of {start + T} tokens (cache {start} + new {T}) is longer than the "
                f"model's context of {limit} tokens (model.max_length / the KV cache size)"
            )

        x = self.embed_tokens(idx)  # (B, T, C)
        cos = self.rope_cos[start : start + T]  # (T, D): the angles of these tokens' positions
        sin = self.rope_sin[start : start + T]  # (T, D)
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and kv_cache is None:
                x = checkpoint(layer, x, cos, sin, use_reentrant=False)  # (B, T, C)
            else:
                x = layer(x, cos, sin, kv_cache)  # (B, T, C)
        if kv_cache is not None:
            kv_cache.pos += T
        x = self.norm(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)

        loss = None
        if targets is not None:
            # Next-token prediction. No shifting here: position t's logits are compared with
            # targets[:, t], which the caller already set to the token at t + 1. Comparing with
            # idx itself would teach the model to copy its input.
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)).float(),  # (B*T, V), float32 for a stable loss
                targets.reshape(-1),  # (B*T,)
                ignore_index=-1,
            )
        return logits, loss

    def num_parameters(self) -> int:
        """Trainable parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())  # parameters() skips shared duplicates

    def new_kv_cache(
        self,
        batch_size: int,
        max_length: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        """An empty KV cache for this model (default: its full context, device and dtype)."""
        weight = self.embed_tokens.weight
        return KVCache(
            layers=self.config.layers,
            batch_size=batch_size,
            kv_heads=self.config.kv_heads,
            head_dim=self.config.head_dim,
            max_length=min(max_length or self.config.max_length, self.config.max_length),
            device=device if device is not None else weight.device,
            dtype=dtype if dtype is not None else weight.dtype,
        )
