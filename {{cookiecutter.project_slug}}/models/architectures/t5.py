"""T5: an encoder-decoder transformer that learns by writing back corrupted spans of text.

    input tokens  -> shared embedding -> encoder: layers x [self-attention; feed-forward]
                  -> final norm -> encoder states (one vector per input token)
    output so far -> shared embedding -> decoder: layers x [causal self-attention;
                     cross-attention to the encoder states; feed-forward] -> final norm
                  -> * dim^-0.5 -> shared embedding, transposed -> logits for the next output token

The encoder reads the whole input at once; the decoder writes the output left to right, looking
at the input through cross-attention. Trained on span corruption (data/span_corruption.py: spans
of the input are replaced by sentinels <extra_id_0>, <extra_id_1>, ...; the output is the spans),
it fills in blanks; trained on (input, output) pairs it maps text to text.

This is T5 v1.1's layer, with v1.0's tied output: every sub-layer is pre-norm with T5's
LayerNorm (an RMS norm: no mean, no bias), the feed-forward block is gated GELU
(wo(gelu_tanh(wi_0 x) * wi_1 x)), there are no biases and no absolute positions: attention
scores get a learned bias per head and per bucket of query-key distance (buckets exact for short
distances, logarithmic up to relative_attention_max_distance), computed in the first layer and
shared by the others, and scores are not scaled by 1/sqrt(D). Input and output embeddings are one
matrix (Hugging Face's T5 ties them always), so the decoder's output is scaled by dim^-0.5 first.

The math and the tensor names match Hugging Face `T5ForConditionalGeneration` with
`feed_forward_proj="gated-gelu"` and `tie_word_embeddings=True`: exporting is a copy of the
tensors, with identical logits. Rename or reshape things here and the export (exporters/hf.py)
needs the same change.

    python -m models.presets                   # sizes of the presets and of this project's model
    python -m training.train                  # train it (make train)
    python -m evaluation.generate --prompt "The cat <extra_id_0> on the mat."   # fill the span
    python -m pytest tests/test_t5.py         # what this file promises, checked

Shapes in comments: B batch, T tokens (new decoder tokens), S tokens attended to, C = dim,
H heads, D head size, V vocabulary, F mlp_dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from config import ModelConfig
from errors import ConfigurationError

IGNORE_INDEX = -100  # labels of positions that are not scored (Hugging Face's convention)


# ---- relative position buckets ----


def relative_position_bucket(relative_position: torch.Tensor, bidirectional: bool,
                             num_buckets: int, max_distance: int) -> torch.Tensor:
    """Map key position - query position to a bucket in [0, num_buckets), as T5 does.

    Bidirectional (the encoder): half of the buckets for keys before the query, half for keys
    after it. Causal (the decoder): only keys at or before the query exist. Within each half,
    small distances get a bucket each and larger ones share logarithmically wider buckets, up
    to max_distance; everything farther shares the last bucket.
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).long() * num_buckets  # keys after the query
        distance = relative_position.abs()
    else:
        distance = -relative_position.clamp(max=0)  # how far back the key is
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # log(distance / max_exact) / log(max_distance / max_exact) spreads the rest over the other
    # half of the buckets (distance 0 is "small", so the log never sees it).
    large = max_exact + (
        torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


# ---- KV cache: writing the output without recomputing the past ----


class T5Cache:
    """The decoder's keys and values, for generation one token at a time.

    Self-attention: the keys and values of the output tokens so far, (layers, B, H, max_length, D),
    filled from `pos` on (the model advances `pos` after each decoder pass). Cross-attention: each
    layer's keys and values of the encoder states, computed at the first pass and kept, since the
    input does not change while the output is written.
    """

    def __init__(self, layers: int, batch_size: int, heads: int, head_dim: int, max_length: int,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None
                 ) -> None:
        shape = (layers, batch_size, heads, max_length, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.cross: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * layers
        self.max_length = max_length
        self.pos = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new k, v (B, H, T, D); return all of them so far (B, H, S, D)."""
        end = self.pos + k.size(2)
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


# ---- the building blocks (names follow Hugging Face's T5, for the export) ----


class Attention(nn.Module):
    """Multi-head attention without biases or score scaling; the first layer of each stack also
    owns the relative position bias (`relative_attention_bias`: one number per bucket and head).
    """

    def __init__(self, config: ModelConfig, has_relative_bias: bool, bidirectional: bool) -> None:
        super().__init__()
        self.heads, self.head_dim = config.heads, config.head_dim
        self.q = nn.Linear(config.dim, config.dim, bias=False)
        self.k = nn.Linear(config.dim, config.dim, bias=False)
        self.v = nn.Linear(config.dim, config.dim, bias=False)
        self.o = nn.Linear(config.dim, config.dim, bias=False)
        self.dropout = config.dropout
        self.bidirectional = bidirectional
        self.num_buckets = config.relative_attention_buckets
        self.max_distance = config.relative_attention_max_distance
        if has_relative_bias:
            self.relative_attention_bias = nn.Embedding(self.num_buckets, config.heads)

    def position_bias(self, query_length: int, key_length: int, offset: int = 0) -> torch.Tensor:
        """(1, H, Tq, Tk): the learned bias of each query-key distance; queries are at positions
        offset, offset + 1, ... (offset > 0 when the decoder continues after cached tokens)."""
        device = self.relative_attention_bias.weight.device
        query = torch.arange(query_length, device=device)[:, None] + offset  # (Tq, 1)
        key = torch.arange(key_length, device=device)[None, :]  # (1, Tk)
        buckets = relative_position_bucket(key - query, self.bidirectional, self.num_buckets,
                                           self.max_distance)  # (Tq, Tk)
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None,
                k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """x: the queries' inputs (B, T, C); k, v: (B, H, S, D); bias: added to the scores,
        (B or 1, H or 1, T, S), -inf where a query may not look."""
        B, T, C = x.shape
        q = self.split_heads(self.q(x))  # (B, H, T, D)
        k, v = k.to(q.dtype), v.to(q.dtype)  # a no-op unless a cache holds another dtype
        if bias is not None:
            bias = bias.to(q.dtype)  # the float32 bias, in the compute dtype (bf16, fp16)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0,
            scale=1.0,  # T5 does not scale the scores (its initialisation accounts for it)
        )  # (B, H, T, D)
        return self.o(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class SelfAttentionSublayer(nn.Module):
    """x + attention(norm(x)) over the same sequence (Hugging Face's T5LayerSelfAttention)."""

    def __init__(self, config: ModelConfig, has_relative_bias: bool, bidirectional: bool) -> None:
        super().__init__()
        self.SelfAttention = Attention(config, has_relative_bias, bidirectional)
        self.layer_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, cache: T5Cache | None = None,
                layer: int = 0) -> torch.Tensor:
        attention = self.SelfAttention
        h = self.layer_norm(x)  # (B, T, C)
        k, v = attention.split_heads(attention.k(h)), attention.split_heads(attention.v(h))
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, H, S, D): the cached tokens and these
        return x + self.dropout(attention(h, bias, k, v))


class CrossAttentionSublayer(nn.Module):
    """x + attention(norm(x)) over the encoder states (Hugging Face's T5LayerCrossAttention)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.EncDecAttention = Attention(config, has_relative_bias=False, bidirectional=True)
        self.layer_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, encoded: torch.Tensor, mask: torch.Tensor | None,
                cache: T5Cache | None = None, layer: int = 0) -> torch.Tensor:
        attention = self.EncDecAttention
        if cache is not None and cache.cross[layer] is not None:
            k, v = cache.cross[layer]  # the input's keys and values, computed once
        else:
            k = attention.split_heads(attention.k(encoded))  # (B, H, S, D)
            v = attention.split_heads(attention.v(encoded))  # (B, H, S, D)
            if cache is not None:
                cache.cross[layer] = (k, v)
        return x + self.dropout(attention(self.layer_norm(x), mask, k, v))


class GatedGELU(nn.Module):
    """wo(gelu(wi_0 x) * wi_1 x), with tanh-approximated GELU (T5 v1.1's "gated-gelu"; Hugging
    Face's gelu_new)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.wi_0 = nn.Linear(config.dim, config.mlp_dim, bias=False)
        self.wi_1 = nn.Linear(config.dim, config.mlp_dim, bias=False)
        self.wo = nn.Linear(config.mlp_dim, config.dim, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x)  # (B, T, F)
        return self.wo(self.dropout(h))  # (B, T, C)


class FeedForwardSublayer(nn.Module):
    """x + gated-GELU(norm(x)) (Hugging Face's T5LayerFF)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.DenseReluDense = GatedGELU(config)  # Hugging Face's name, whatever the activation
        self.layer_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.DenseReluDense(self.layer_norm(x)))


class Block(nn.Module):
    """One layer. Encoder: [self-attention, feed-forward]. Decoder: [causal self-attention,
    cross-attention, feed-forward]. (`layer` is Hugging Face's name for this list.)"""

    def __init__(self, config: ModelConfig, index: int, is_decoder: bool) -> None:
        super().__init__()
        self.index = index  # which slice of the cache is ours
        self.layer = nn.ModuleList([SelfAttentionSublayer(config, has_relative_bias=index == 0,
                                                          bidirectional=not is_decoder)])
        if is_decoder:
            self.layer.append(CrossAttentionSublayer(config))
        self.layer.append(FeedForwardSublayer(config))

    def forward(self, x: torch.Tensor, bias: torch.Tensor, encoded: torch.Tensor | None = None,
                encoder_mask: torch.Tensor | None = None, cache: T5Cache | None = None
                ) -> torch.Tensor:
        x = self.layer[0](x, bias, cache, self.index)  # (B, T, C)
        if encoded is not None:
            x = self.layer[1](x, encoded, encoder_mask, cache, self.index)  # (B, T, C)
        return self.layer[-1](x)  # (B, T, C)


class Stack(nn.Module):
    """The encoder or the decoder: blocks, then T5's final LayerNorm."""

    def __init__(self, config: ModelConfig, is_decoder: bool) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        self.block = nn.ModuleList(Block(config, i, is_decoder) for i in range(config.layers))
        self.final_layer_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor, bias: torch.Tensor, encoded: torch.Tensor | None = None,
                encoder_mask: torch.Tensor | None = None, cache: T5Cache | None = None
                ) -> torch.Tensor:
        x = self.dropout(x)  # (B, T, C)
        for block in self.block:
            if self.gradient_checkpointing and self.training and cache is None:
                x = checkpoint(block, x, bias, encoded, encoder_mask, use_reentrant=False)
            else:
                x = block(x, bias, encoded, encoder_mask, cache)  # (B, T, C)
        return self.dropout(self.final_layer_norm(x))  # (B, T, C)

    def position_bias(self, query_length: int, key_length: int, offset: int = 0) -> torch.Tensor:
        """The first block's relative position bias, which every block of the stack uses."""
        return self.block[0].layer[0].SelfAttention.position_bias(query_length, key_length,
                                                                  offset)


def padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, S) 1 for tokens, 0 for padding -> (B, 1, 1, S) additive: -inf on padding keys."""
    if attention_mask is None:
        return None
    mask = torch.zeros(attention_mask.shape, dtype=torch.float32, device=attention_mask.device)
    mask = mask.masked_fill(attention_mask == 0, float("-inf"))
    return mask[:, None, None, :]


# ---- the model ----


class T5(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size <= 0:
            raise ConfigurationError(
                "the model's vocab_size is not set (it is 0)",
                "it comes from the trained tokenizer: run `make tokenizer`, then build the model "
                "with dataclasses.replace(cfg.model, vocab_size=tokenizer.get_vocab_size())",
            )
        self.config = config
        # One matrix embeds the input, embeds the output so far, and scores the next token.
        self.shared = nn.Embedding(config.vocab_size, config.dim)
        self.encoder = Stack(config, is_decoder=False)
        self.decoder = Stack(config, is_decoder=True)
        self.init_weights()

    @property
    def gradient_checkpointing(self) -> bool:
        """Recompute each block's activations during backward: much less memory for ~30% more
        compute (training.gradient_checkpointing in llm.config.js)."""
        return self.encoder.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        self.encoder.gradient_checkpointing = self.decoder.gradient_checkpointing = value

    @torch.no_grad()
    def init_weights(self) -> None:
        """T5's initialisation (Mesh TensorFlow's): each matrix scaled by its fan-in, the query
        also by the head size (standing in for the 1/sqrt(D) that the scores do not get), the
        embedding N(0, 1) (the output's dim^-0.5 scales it back), norms 1.

        Also the way to materialise a model built on the meta device: `model.to_empty(device=...)`
        then `model.init_weights()`.
        """
        c = self.config
        nn.init.normal_(self.shared.weight, std=1.0)
        for module in self.modules():
            if isinstance(module, Attention):
                nn.init.normal_(module.q.weight, std=(c.dim * c.head_dim) ** -0.5)
                nn.init.normal_(module.k.weight, std=c.dim**-0.5)
                nn.init.normal_(module.v.weight, std=c.dim**-0.5)
                nn.init.normal_(module.o.weight, std=c.dim**-0.5)  # (heads * head_dim) ** -0.5
                if hasattr(module, "relative_attention_bias"):
                    nn.init.normal_(module.relative_attention_bias.weight, std=c.dim**-0.5)
            elif isinstance(module, GatedGELU):
                nn.init.normal_(module.wi_0.weight, std=c.dim**-0.5)
                nn.init.normal_(module.wi_1.weight, std=c.dim**-0.5)
                nn.init.normal_(module.wo.weight, std=c.mlp_dim**-0.5)
            elif isinstance(module, nn.RMSNorm):
                module.reset_parameters()  # weight = 1

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
               ) -> torch.Tensor:
        """The encoder states (B, S, C) of the input ids (B, S)."""
        S = input_ids.size(1)
        if S > self.config.max_length:
            raise ValueError(f"input of {S} tokens is longer than the model's context of "
                             f"{self.config.max_length} tokens (model.max_length)")
        bias = self.encoder.position_bias(S, S)  # (1, H, S, S)
        mask = padding_mask(attention_mask)
        if mask is not None:
            bias = bias + mask  # (B, H, S, S): padding keys at -inf
        return self.encoder(self.shared(input_ids), bias)

    def decode(self, decoder_input_ids: torch.Tensor, encoded: torch.Tensor,
               attention_mask: torch.Tensor | None = None, cache: T5Cache | None = None
               ) -> torch.Tensor:
        """Logits (B, T, V) of the token after each of decoder_input_ids (B, T), given the
        encoder states (B, S, C). With a cache, continue after the tokens already in it."""
        T = decoder_input_ids.size(1)
        start = 0 if cache is None else cache.pos
        if cache is not None and start + T > cache.max_length:
            raise ValueError(f"output of {start + T} tokens is longer than the cache "
                             f"({cache.max_length} tokens)")
        bias = self.decoder.position_bias(T, start + T, offset=start)  # (1, H, T, S)
        # Causal: query i (at position start + i) may look at keys 0 .. start + i.
        allowed = torch.ones(T, start + T, dtype=torch.bool, device=bias.device).tril(start)
        bias = bias.masked_fill(~allowed, float("-inf"))  # (1, H, T, S)
        x = self.decoder(self.shared(decoder_input_ids), bias, encoded,
                         padding_mask(attention_mask), cache)  # (B, T, C)
        if cache is not None:
            cache.pos += T
        # The output matrix is the embedding: scale the states back to its size first.
        return F.linear(x * self.config.dim**-0.5, self.shared.weight)  # (B, T, V)

    def forward(
        self,
        input_ids: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) of the output tokens, and the loss if labels are given.

        input_ids: (B, S) the encoder's input (with sentinels where spans were cut out).
        decoder_input_ids: (B, T) the output shifted right by one, starting with the decoder's
        start token (the padding token, as in T5); labels: (B, T) the output itself, -100 where
        not scored (data/span_corruption.py makes all three). No shift happens here: position t's
        logits are compared with labels[:, t], the token that follows decoder_input_ids[:, t].
        """
        logits = self.decode(decoder_input_ids, self.encode(input_ids, attention_mask),
                             attention_mask)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)).float(),  # (B*T, V), float32 for a stable loss
                labels.reshape(-1),  # (B*T,)
                ignore_index=IGNORE_INDEX,
            )
        return logits, loss

    def num_parameters(self) -> int:
        """Trainable parameters (the shared embedding counted once)."""
        return sum(p.numel() for p in self.parameters())

    def new_kv_cache(self, batch_size: int, max_length: int,
                     device: torch.device | str | None = None,
                     dtype: torch.dtype | None = None) -> T5Cache:
        """An empty cache for `max_length` output tokens (default: the model's device, dtype)."""
        weight = self.shared.weight
        return T5Cache(self.config.layers, batch_size, self.config.heads, self.config.head_dim,
                       max_length, device if device is not None else weight.device,
                       dtype if dtype is not None else weight.dtype)
