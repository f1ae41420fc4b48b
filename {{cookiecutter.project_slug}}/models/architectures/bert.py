"""BERT: an encoder-only transformer that learns by filling in hidden tokens (masked-LM).

    tokens -> embeddings (word + token type + position, LayerNorm)
           -> layers x [x = LayerNorm(x + attention(x)); x = LayerNorm(x + MLP(x))]
           -> MLM head (dense, GELU, LayerNorm, decoder tied to the word embeddings)
           -> logits for every position: what token belongs there

Unlike gpt.py, every token sees every other token (no causal mask), so the model cannot write
text left to right; it is trained to recover the tokens that data/masked_lm.py hid, and it is
used to fill in [MASK] tokens (`make generate`) or as a text encoder. The layers are "post-LN"
(the normalisation comes after each residual sum), positions are learned embeddings, the
feed-forward block uses exact (erf) GELU, and every linear layer has a bias: the original BERT.

The math and the tensor names match Hugging Face `BertForMaskedLM`: exporting is a rename of keys
(`bert.` before the encoder's, `cls.predictions.` for the head's) with identical logits. Rename
or reshape things here and the export (exporters/hf.py) needs the same change.

    python -m models.presets                   # sizes of the presets and of this project's model
    python -m training.train                  # train it (make train)
    python -m evaluation.generate --prompt "The [MASK] sat on the mat."   # fill the mask
    python -m pytest tests/test_bert.py       # what this file promises, checked

Shapes in comments: B batch, T tokens, C = dim, H heads, D head size, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from config import ModelConfig
from errors import ConfigurationError

TOKEN_TYPES = 2  # segment A / segment B, as in BERT (we train on single segments: type 0)
IGNORE_INDEX = -100  # labels of positions that are not scored (Hugging Face's convention)


# ---- the building blocks (names follow Hugging Face's BertModel, for the export) ----


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


# ---- the model ----


class BERT(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size <= 0:
            raise ConfigurationError(
                "the model's vocab_size is not set (it is 0)",
                "it comes from the trained tokenizer: run `make tokenizer`, then build the model "
                "with dataclasses.replace(cfg.model, vocab_size=tokenizer.get_vocab_size())",
            )
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
        B, T = input_ids.shape
        if T > self.config.max_length:
            raise ValueError(f"sequence of {T} tokens is longer than the model's context of "
                             f"{self.config.max_length} tokens (model.max_length)")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        mask = None
        if attention_mask is not None:  # (B, T): 1 for tokens, 0 for padding
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): keys to attend to
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
        """Logits and, when labels are given, the loss.

        input_ids: (B, T), with [MASK] (or a random token, or the token itself) where a token was
        hidden. labels: (B, T), the original token at each hidden position and -100 everywhere
        else (data/masked_lm.py makes both): only the hidden tokens are scored.

        Without labels: logits (B, T, V), a score for every token at every position (fill-mask).
        With labels: logits (N, V) for the N hidden positions only, in row order, so
        `logits[i]` scores `labels[labels != -100][i]`. Only they go through the head because
        only they are scored: its decoder over the whole vocabulary is the costliest matrix
        multiply of a small model, and 85% of the positions are not hidden ("sparse prediction",
        as in NVIDIA's and MosaicML's BERTs). The loss is the same as from all the logits.
        """
        hidden = self.encode(input_ids, attention_mask, token_type_ids)  # (B, T, C)
        if labels is None:
            return self.head(hidden), None  # (B, T, V)
        scored = labels != IGNORE_INDEX  # (B, T)
        logits = self.head(hidden[scored])  # (N, V)
        loss = F.cross_entropy(logits.float(), labels[scored])  # float32 for a stable loss
        return logits, loss

    def num_parameters(self) -> int:
        """Trainable parameters, the tied decoder counted once."""
        return sum(p.numel() for p in self.parameters())  # parameters() skips shared duplicates
