"""BERT: an encoder-only transformer that learns by filling in hidden tokens (masked-LM).

Two encoders, chosen by model.variant in llm.config.js; both are trained, evaluated, filled in
and exported the same way:

- 'modernbert' (new projects): ModernBERT's layer. Pre-norm (LayerNorm without bias before each
  half of a layer), rotary position embeddings in every attention (no position table), a gated
  GELU feed-forward block (GeGLU), no biases except the output's. Exports to Hugging Face
  `ModernBertForMaskedLM`.

      tokens -> word embedding -> LayerNorm
             -> layers x [x = x + attention(norm(x)) (rotary q, k); x = x + GeGLU(norm(x))]
             -> final LayerNorm -> MLM head (dense, GELU, LayerNorm, decoder tied to the
                word embedding) -> logits for every position: what token belongs there

- 'bert': the original BERT. Learned absolute positions, "post-LN" layers (the normalisation
  after each residual sum), exact GELU, a bias on every linear layer. Exports to Hugging Face
  `BertForMaskedLM`, for whoever needs BERT-exact weights.

      tokens -> embeddings (word + token type + position, LayerNorm)
             -> layers x [x = LayerNorm(x + attention(x)); x = LayerNorm(x + MLP(x))]
             -> MLM head (dense, GELU, LayerNorm, decoder tied to the word embeddings)

Why ModernBERT's layer is the default: on a CPU budget a small model must first learn which
neighbours of a hidden token to look at. With a learned position per index it has to learn that
for each of the 256 positions separately, and at nano size it did not within 600 steps (masked
accuracy 15%: the frequent words); rotary positions make "the token two to the left" the same
pattern everywhere. With the short sequences training starts on (objective.short_sequence_length,
ShortFirst in data/dataset.py), ModernBERT reached 49% after 400 steps and 56% after 600; the
original BERT with the same start stayed at 17% (README.md has the curves).

Unlike gpt.py, every token sees every other token (no causal mask), so the model cannot write
text left to right; it is trained to recover the tokens that data/masked_lm.py hid, and it is
used to fill in [MASK] tokens (`make generate`) or as a text encoder.

The math and the tensor names match the Hugging Face classes: exporting is a copy of the
tensors (ModernBERT) or a rename of keys (BERT: `bert.` before the encoder's, `cls.predictions.`
for the head's), with identical logits. Rename or reshape things here and the export
(exporters/hf.py) needs the same change.

    python -m models.presets                   # sizes of the presets and of this project's model
    python -m training.train                  # train it (make train)
    python -m evaluation.generate --prompt "The [MASK] sat on the mat."   # fill the mask
    python -m pytest tests/test_bert.py       # what this file promises, checked

Shapes in comments: B batch, T tokens, C = dim, H heads, D head size, V vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from config import ModelConfig
from errors import ConfigurationError

TOKEN_TYPES = 2  # segment A / segment B, as in BERT (we train on single segments: type 0)
IGNORE_INDEX = -100  # labels of positions that are not scored (Hugging Face's convention)
VARIANTS = ("modernbert", "bert")  # model.variant: the class below that builds each


# ---- ModernBERT's building blocks (names follow Hugging Face's ModernBertModel) ----


def rotary_cos_sin(positions: torch.Tensor, head_dim: int, theta: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (T, D) of rotary position embeddings in the rotate-half layout: element i of
    a head pairs with element i + D/2, and turns by position * theta^(-2i/D)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float,
                                             device=positions.device) / head_dim))  # (D/2,)
    angles = positions[:, None].float() * inv_freq  # (T, D/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, D)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each head's pairs (x_i, x_{i+D/2}) by its position's angle: (B, H, T, D)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    turned = x.float() * cos + torch.cat((-x2, x1), dim=-1) * sin
    return turned.to(x.dtype)  # in float32 and back, as Hugging Face's ModernBERT does


class ModernEmbeddings(nn.Module):
    """The word embedding, then LayerNorm (no positions here: attention rotates q and k)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.norm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=False)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.drop(self.norm(self.tok_embeddings(input_ids)))  # (B, T, C)


class ModernAttention(nn.Module):
    """Bidirectional multi-head attention: one fused q, k, v projection, rotary positions on q
    and k, no biases."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = config.heads, config.head_dim
        self.Wqkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.Wo = nn.Linear(config.dim, config.dim, bias=False)
        self.dropout = config.dropout
        self.out_drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.Wqkv(x).view(B, T, 3, self.heads, self.head_dim)  # (B, T, 3, H, D)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(dim=2))  # (B, H, T, D) each
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
        )  # (B, H, T, D); scale 1/sqrt(D)
        return self.out_drop(self.Wo(y.transpose(1, 2).reshape(B, T, C)))  # (B, T, C)


class GeGLU(nn.Module):
    """Wo(gelu(a) * g), where a and g are the two halves of Wi x (exact GELU): ModernBERT's
    feed-forward block (Hugging Face's ModernBertMLP)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.Wi = nn.Linear(config.dim, 2 * config.mlp_dim, bias=False)
        self.drop = nn.Dropout(config.dropout)
        self.Wo = nn.Linear(config.mlp_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.Wi(x).chunk(2, dim=-1)  # (B, T, mlp_dim) each
        return self.Wo(self.drop(F.gelu(a) * g))  # (B, T, C)


class ModernLayer(nn.Module):
    """x = x + attention(norm(x)); x = x + GeGLU(norm(x)). The first layer's attention reads
    the embeddings' output, already normalised: it has no norm of its own (as in ModernBERT)."""

    def __init__(self, config: ModelConfig, index: int) -> None:
        super().__init__()
        self.attn_norm = nn.Identity() if index == 0 else \
            nn.LayerNorm(config.dim, eps=config.norm_eps, bias=False)
        self.attn = ModernAttention(config)
        self.mlp_norm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=False)
        self.mlp = GeGLU(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)  # (B, T, C)
        return x + self.mlp(self.mlp_norm(x))  # (B, T, C)


class ModernEncoder(nn.Module):
    """Embeddings, the layers, the final norm (Hugging Face's ModernBertModel: `model.`)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embeddings = ModernEmbeddings(config)
        self.layers = nn.ModuleList(ModernLayer(config, i) for i in range(config.layers))
        self.final_norm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=False)


class ModernHead(nn.Module):
    """The MLM head's dense -> GELU -> LayerNorm, before the tied decoder."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.dim, config.dim, bias=False)
        self.norm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.dense(x)))


# ---- the original BERT's building blocks (names follow Hugging Face's BertModel) ----


class Embeddings(nn.Module):
    """Token, token-type and learned position embeddings, summed, then LayerNorm."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.position_embeddings = nn.Embedding(config.max_length, config.dim)
        self.token_type_embeddings = nn.Embedding(TOKEN_TYPES, config.dim)
        self.LayerNorm = nn.LayerNorm(config.dim, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.size(1)
        positions = torch.arange(T, device=input_ids.device)  # (T,)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(positions)  # (B, T, C); same order of sums as BERT's
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    """Bidirectional multi-head attention: q, k, v projections with biases."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = config.heads, config.head_dim
        self.query = nn.Linear(config.dim, config.dim)
        self.key = nn.Linear(config.dim, config.dim)
        self.value = nn.Linear(config.dim, config.dim)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        q = self.query(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.key(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        v = self.value(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        # mask: (B, 1, 1, T), True where a key is a real token (False for padding).
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
        )  # (B, H, T, D); scale 1/sqrt(D)
        return y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)


class AddNorm(nn.Module):
    """dense -> dropout -> add the residual -> LayerNorm: the "post-LN" step that ends both
    halves of a layer (Hugging Face's BertSelfOutput and BertOutput)."""

    def __init__(self, in_dim: int, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(in_dim, config.dim)
        self.LayerNorm = nn.LayerNorm(config.dim, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class Attention(nn.Module):
    """Self-attention, then AddNorm. (`self.self` is Hugging Face's name: the export's keys
    are `attention.self.query.weight` and so on.)"""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.self = SelfAttention(config)
        self.output = AddNorm(config.dim, config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class Intermediate(nn.Module):
    """The first half of the feed-forward block: dense to mlp_dim, then exact (erf) GELU."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.dim, config.mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # (B, T, mlp_dim)


class Layer(nn.Module):
    """One encoder layer: x = LN(x + attention(x)); x = LN(x + dense(gelu(dense(x))))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = AddNorm(config.mlp_dim, config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention(x, mask)  # (B, T, C)
        return self.output(self.intermediate(x), x)  # (B, T, C)


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.layers))


class Transform(nn.Module):
    """The MLM head's dense -> GELU -> LayerNorm, before the tied decoder."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.dim, config.dim)
        self.LayerNorm = nn.LayerNorm(config.dim, eps=config.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class MLMHead(nn.Module):
    """Hidden states -> token scores. The decoder's weight is the word embedding matrix (tied);
    its bias is its own."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.transform = Transform(config)
        self.decoder = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x)) + self.bias  # (B, T, V)


# ---- the models ----


def check_vocab_size(config: ModelConfig) -> None:
    if config.vocab_size <= 0:
        raise ConfigurationError(
            "the model's vocab_size is not set (it is 0)",
            "it comes from the trained tokenizer: run `make tokenizer`, then build the model "
            "with dataclasses.replace(cfg.model, vocab_size=tokenizer.get_vocab_size())",
        )


def padding_mask(attention_mask: torch.Tensor | None, T: int, max_length: int
                 ) -> torch.Tensor | None:
    """(B, T) 1 for tokens, 0 for padding -> (B, 1, 1, T) True for the keys to attend to (None
    without padding); ValueError for a sequence longer than the context."""
    if T > max_length:
        raise ValueError(f"sequence of {T} tokens is longer than the model's context of "
                         f"{max_length} tokens (model.max_length)")
    if attention_mask is None:
        return None
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)


def masked_lm_output(hidden: torch.Tensor, labels: torch.Tensor | None,
                     head: Callable[[torch.Tensor], torch.Tensor]
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The hidden states (B, T, C) through the MLM head: logits and, with labels, the loss.

    labels: (B, T), the original token at each hidden position and -100 everywhere else
    (data/masked_lm.py makes them): only the hidden tokens are scored.

    Without labels: logits (B, T, V), a score for every token at every position (fill-mask).
    With labels: logits (N, V) for the N hidden positions only, in row order, so `logits[i]`
    scores `labels[labels != -100][i]`. Only they go through the head because only they are
    scored: its decoder over the whole vocabulary is the costliest matrix multiply of a small
    model, and most positions are not hidden ("sparse prediction", as in NVIDIA's, MosaicML's
    and ModernBERT's training code). The loss is the same as from all the logits.
    """
    if labels is None:
        return head(hidden), None  # (B, T, V)
    scored = labels != IGNORE_INDEX  # (B, T)
    logits = head(hidden[scored])  # (N, V)
    loss = F.cross_entropy(logits.float(), labels[scored])  # float32 for a stable loss
    return logits, loss


class ModernBERT(nn.Module):
    """model.variant 'modernbert' (the default of new projects)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        check_vocab_size(config)
        self.config = config
        self.model = ModernEncoder(config)
        self.head = ModernHead(config)
        self.decoder = nn.Linear(config.dim, config.vocab_size)  # its weight: the embedding's
        self.tie_weights()
        # Set True to recompute each layer's activations during backward: much less memory for
        # ~30% more compute (training.gradient_checkpointing in llm.config.js).
        self.gradient_checkpointing = False
        self.init_weights()

    def tie_weights(self) -> None:
        """One matrix maps tokens to vectors and vectors back to token scores."""
        self.decoder.weight = self.model.embeddings.tok_embeddings.weight

    @torch.no_grad()
    def init_weights(self) -> None:
        """ModernBERT's initialisation: matrices from N(0, 0.02) cut at 2 standard deviations;
        those that add into the residual stream (each Wo) and the head's dense 0.02 /
        sqrt(2 * layers), so the stream's size does not grow with depth; norms 1, the decoder's
        bias 0.

        Also the way to materialise a model built on the meta device: `model.to_empty(device=...)`
        then `model.init_weights()`.
        """
        self.tie_weights()  # to_empty() gives each module its own copy: share it again
        small = 0.02 / math.sqrt(2 * self.config.layers)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)) and name != "decoder":
                std = small if name.endswith(("Wo", "head.dense")) else 0.02
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()  # weight 1 (no bias)
        nn.init.zeros_(self.decoder.bias)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
               ) -> torch.Tensor:
        """The final norm's hidden states (B, T, C): a vector per token, seen in context."""
        T = input_ids.size(1)
        mask = padding_mask(attention_mask, T, self.config.max_length)
        cos, sin = rotary_cos_sin(torch.arange(T, device=input_ids.device),
                                  self.config.head_dim, self.config.rope_theta)  # (T, D) each
        x = self.model.embeddings(input_ids)  # (B, T, C)
        for layer in self.model.layers:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, cos, sin, mask, use_reentrant=False)  # (B, T, C)
            else:
                x = layer(x, cos, sin, mask)  # (B, T, C)
        return self.model.final_norm(x)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, when labels are given, the loss (see masked_lm_output).

        input_ids: (B, T), with [MASK] (or a random token, or the token itself) where a token was
        hidden; attention_mask: (B, T), 0 on padding.
        """
        hidden = self.encode(input_ids, attention_mask)  # (B, T, C)
        return masked_lm_output(hidden, labels, lambda h: self.decoder(self.head(h)))

    def num_parameters(self) -> int:
        """Trainable parameters, the tied decoder counted once."""
        return sum(p.numel() for p in self.parameters())  # parameters() skips shared duplicates


class BERT(nn.Module):
    """model.variant 'bert': the original BERT."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        check_vocab_size(config)
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.head = MLMHead(config)
        self.tie_weights()
        # Set True to recompute each layer's activations during backward: much less memory for
        # ~30% more compute (training.gradient_checkpointing in llm.config.js).
        self.gradient_checkpointing = False
        self.init_weights()

    def tie_weights(self) -> None:
        """One matrix maps tokens to vectors and vectors back to token scores, as in BERT."""
        self.head.decoder.weight = self.embeddings.word_embeddings.weight

    @torch.no_grad()
    def init_weights(self) -> None:
        """BERT's initialisation: every matrix N(0, 0.02), biases 0, LayerNorms 1 and 0.

        Also the way to materialise a model built on the meta device: `model.to_empty(device=...)`
        then `model.init_weights()`.
        """
        self.tie_weights()  # to_empty() gives each module its own copy: share it again
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()  # weight 1, bias 0
        nn.init.zeros_(self.head.bias)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The last layer's hidden states (B, T, C): a vector per token, seen in context."""
        mask = padding_mask(attention_mask, input_ids.size(1), self.config.max_length)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, C)
        for layer in self.encoder.layer:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, mask, use_reentrant=False)  # (B, T, C)
            else:
                x = layer(x, mask)  # (B, T, C)
        return x

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, when labels are given, the loss (see masked_lm_output).

        input_ids: (B, T), with [MASK] (or a random token, or the token itself) where a token was
        hidden; attention_mask: (B, T), 0 on padding; token_type_ids: (B, T), segment A or B
        (default all A, as in training).
        """
        hidden = self.encode(input_ids, attention_mask, token_type_ids)  # (B, T, C)
        return masked_lm_output(hidden, labels, self.head)

    def num_parameters(self) -> int:
        """Trainable parameters, the tied decoder counted once."""
        return sum(p.numel() for p in self.parameters())  # parameters() skips shared duplicates
