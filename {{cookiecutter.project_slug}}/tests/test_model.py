"""What models/ promises: the model learns next-token prediction, is causal, caches keys and
values correctly, matches Hugging Face Llama, and the presets are the sizes they claim.

    python -m pytest tests/test_model.py -q
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest
import torch

from config import ModelConfig
from errors import ConfigurationError
from models.architectures.gpt import GPT, apply_rope, precompute_rope
from models.presets import PRESETS, count_parameters, preset_config

# ---- the objective ----


def greedy(model: GPT, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    model.eval()
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(torch.tensor([ids[-model.config.max_length :]]))
            ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt) :]


def test_learns_next_token(cycle_model: tuple[GPT, torch.Tensor]) -> None:
    """Trained with shifted targets (conftest.train_next_token), the model continues a 50-token
    cycle exactly: it predicts the token after the current one, which is never the current one."""
    model, seq = cycle_model
    generated = greedy(model, seq[7:12].tolist(), 60)  # 60 > 50: it must wrap around the cycle
    assert generated == seq[12:72].tolist()


def test_unshifted_targets_would_be_caught(tiny_model_config: ModelConfig,
                                           cycle_sequence: torch.Tensor,
                                           next_token_trainer: Callable) -> None:
    """The control: the same training with unshifted targets (y = x, the earlier create-llm's
    bug) learns to copy its input, and fails the check above."""
    seq = cycle_sequence
    model = next_token_trainer(GPT(tiny_model_config), seq, shift=False, steps=80)
    prompt = seq[7:12].tolist()
    generated = greedy(model, prompt, 20)
    assert generated[0] == prompt[-1]  # it repeats the current token
    assert sum(a == b for a, b in zip(generated, seq[12:32].tolist(), strict=True)) < 5


def test_initial_loss_is_uniform_guess(tiny_model_config: ModelConfig) -> None:
    """At initialisation every token is about equally likely: loss ~ ln(vocab)."""
    model = GPT(tiny_model_config)
    x = torch.randint(0, 256, (4, 64))
    y = torch.randint(0, 256, (4, 64))
    _, loss = model(x, targets=y)
    assert abs(loss.item() - math.log(256)) < 0.3


def test_ignore_index(tiny_model_config: ModelConfig) -> None:
    """Targets of -1 are not scored (the evaluation windows use this)."""
    model = GPT(tiny_model_config)
    x = torch.randint(0, 256, (2, 16))
    y = torch.randint(0, 256, (2, 16))
    y_masked = y.clone()
    y_masked[:, :8] = -1
    logits, loss = model(x, targets=y_masked)
    scored = logits[:, 8:].reshape(-1, 256)  # (2*8, V)
    expected = torch.nn.functional.cross_entropy(scored, y[:, 8:].reshape(-1))
    assert torch.allclose(loss, expected, atol=1e-6)


# ---- causality and the KV cache ----


def test_future_tokens_never_change_earlier_logits(tiny_model_config: ModelConfig) -> None:
    model = GPT(tiny_model_config).eval()
    x = torch.randint(0, 256, (2, 40))
    changed = x.clone()
    changed[:, 20:] = (changed[:, 20:] + 1) % 256
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(changed)
    assert torch.allclose(a[:, :20], b[:, :20], atol=1e-6)
    assert not torch.allclose(a[:, 20:], b[:, 20:], atol=1e-3)


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
def test_kv_cache_matches_full_forward(tiny_model_config: ModelConfig, kv_heads: int) -> None:
    """Prefill, a multi-token chunk after the prefill (the shifted causal mask), then one token
    at a time: the same logits as one pass over everything."""
    model = GPT(dataclasses.replace(tiny_model_config, kv_heads=kv_heads)).eval()
    x = torch.randint(0, 256, (2, 30))
    with torch.no_grad():
        full, _ = model(x)
        cache = model.new_kv_cache(batch_size=2)
        parts = [model(x[:, :10], kv_cache=cache)[0], model(x[:, 10:17], kv_cache=cache)[0]]
        parts += [model(x[:, t : t + 1], kv_cache=cache)[0] for t in range(17, 30)]
    assert cache.pos == 30
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


def test_context_limit_is_enforced(tiny_model_config: ModelConfig) -> None:
    model = GPT(tiny_model_config)
    with pytest.raises(ValueError, match="longer than the model's context"):
        model(torch.zeros(1, 65, dtype=torch.long))
    cache = model.new_kv_cache(batch_size=1)
    model(torch.zeros(1, 60, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="longer than the model's context"):
        model(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_config: ModelConfig) -> None:
    model = GPT(tiny_model_config)
    x, y = torch.randint(0, 256, (2, 32)), torch.randint(0, 256, (2, 32))
    model(x, targets=y)[1].backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing = True
    model(x, targets=y)[1].backward()
    for p, g in zip(model.parameters(), expected, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-6)


# ---- the Llama layout (what export relies on) ----


def test_tensor_names_follow_llama(tiny_model_config: ModelConfig) -> None:
    model = GPT(tiny_model_config)
    expected = {"embed_tokens.weight", "norm.weight", "lm_head.weight"}
    for i in range(2):
        expected |= {f"layers.{i}.{name}.weight" for name in (
            "input_layernorm", "post_attention_layernorm",
            "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
    state = model.state_dict()
    assert set(state) == expected  # no biases, no RoPE tables in checkpoints
    assert state["lm_head.weight"].data_ptr() == state["embed_tokens.weight"].data_ptr()  # tied
    assert state["layers.0.self_attn.k_proj.weight"].shape == (2 * 8, 32)  # kv_heads * head_dim
    untied = GPT(dataclasses.replace(tiny_model_config, tie_embeddings=False))
    assert untied.lm_head.weight.data_ptr() != untied.embed_tokens.weight.data_ptr()
    assert untied.num_parameters() == model.num_parameters() + 256 * 32


def test_rope_is_rotate_half() -> None:
    """Element i of a head turns together with element i + head_dim/2 (not i + 1), by
    position * theta^(-2i/head_dim)."""
    head_dim, theta = 8, 10000.0
    cos, sin = precompute_rope(head_dim, 16, theta)
    position = 5
    for i in range(head_dim // 2):
        x = torch.zeros(1, 1, 1, head_dim)
        x[..., i] = 1.0
        out = apply_rope(x, cos[position : position + 1], sin[position : position + 1]).flatten()
        angle = position * theta ** (-2 * i / head_dim)
        expected = torch.zeros(head_dim)
        expected[i], expected[i + head_dim // 2] = math.cos(angle), math.sin(angle)
        assert torch.allclose(out, expected, atol=1e-6)


def test_rope_scores_depend_only_on_distance() -> None:
    cos, sin = precompute_rope(16, 64, 10000.0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m: int, n: int) -> float:
        qm = apply_rope(q, cos[m : m + 1], sin[m : m + 1])
        kn = apply_rope(k, cos[n : n + 1], sin[n : n + 1])
        return float((qm * kn).sum())

    assert math.isclose(score(10, 3), score(40, 33), rel_tol=1e-4, abs_tol=1e-5)


@pytest.mark.parametrize("eps", [1e-5, 1e-6])
def test_rmsnorm_eps_is_explicit(tiny_model_config: ModelConfig, eps: float) -> None:
    model = GPT(dataclasses.replace(tiny_model_config, norm_eps=eps))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.RMSNorm)]
    assert len(norms) == 2 * 2 + 1
    assert all(m.eps == eps for m in norms)


def test_matches_hugging_face_llama(tiny_model_config: ModelConfig) -> None:
    """Same weights in transformers' LlamaForCausalLM give the same logits (the export)."""
    transformers = pytest.importorskip("transformers")
    for tied in (True, False):
        c = dataclasses.replace(tiny_model_config, tie_embeddings=tied, rope_theta=500000.0)
        model = GPT(c).eval()
        hf_config = transformers.LlamaConfig(
            vocab_size=c.vocab_size, hidden_size=c.dim, intermediate_size=c.mlp_dim,
            num_hidden_layers=c.layers, num_attention_heads=c.heads,
            num_key_value_heads=c.kv_heads, head_dim=c.head_dim, hidden_act="silu",
            max_position_embeddings=c.max_length, rms_norm_eps=c.norm_eps,
            rope_theta=c.rope_theta, rope_parameters={"rope_type": "default",
                                                      "rope_theta": c.rope_theta},
            tie_word_embeddings=tied, attention_bias=False, mlp_bias=False,
        )
        hf = transformers.LlamaForCausalLM(hf_config).eval()
        state = {("" if k == "lm_head.weight" else "model.") + k: v
                 for k, v in model.state_dict().items()}
        hf.load_state_dict(state, strict=True)  # every name matches, nothing left over
        x = torch.randint(0, c.vocab_size, (2, 40))
        with torch.no_grad():
            ours, _ = model(x)
            theirs = hf(x).logits
        assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


# ---- config and presets ----


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_sizes_are_what_they_claim(name: str) -> None:
    """Counted on the meta device (no memory), within 10% of ~1M / 10M / 100M / 1B."""
    count = count_parameters(preset_config(name))
    target = PRESETS[name]["target_params"]
    assert abs(count - target) / target < 0.10, f"{name}: {count:,} vs {target:,}"


def test_count_parameters_equals_a_real_model(tiny_model_config: ModelConfig) -> None:
    nano = preset_config("nano")
    assert count_parameters(nano) == GPT(nano).num_parameters()
    assert count_parameters(tiny_model_config) == sum(
        p.numel() for p in GPT(tiny_model_config).parameters()
    )


def test_meta_model_can_be_materialised(tiny_model_config: ModelConfig) -> None:
    """Build on meta, allocate, init_weights(): a working model (how large models are built)."""
    with torch.device("meta"):
        model = GPT(tiny_model_config)
    model.to_empty(device="cpu")
    model.init_weights()
    assert model.lm_head.weight is model.embed_tokens.weight  # still tied
    reference = GPT(tiny_model_config)
    assert torch.equal(model.rope_cos, reference.rope_cos)
    _, loss = model(torch.randint(0, 256, (2, 16)), targets=torch.randint(0, 256, (2, 16)))
    assert abs(loss.item() - math.log(256)) < 0.3


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"dim": 30, "heads": 4}, "model.dim"),
        ({"dim": 36, "heads": 4}, "model.heads"),  # head size 9: odd
        ({"heads": 4, "kv_heads": 3}, "model.kv_heads"),
        ({"layers": 0}, "model.layers"),
        ({"max_length": -1}, "model.max_length"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"norm_eps": 0.0}, "model.norm_eps"),
        ({"architecture": "gtp"}, "model.architecture"),
    ],
)
def test_invalid_config_names_the_key(tiny_model_config: ModelConfig, change: dict,
                                      key: str) -> None:
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")) as raised:
        dataclasses.replace(tiny_model_config, **change)
    assert raised.value.suggestion


def test_model_needs_a_vocab_size(tiny_model_config: ModelConfig) -> None:
    with pytest.raises(ConfigurationError, match="vocab_size"):
        GPT(dataclasses.replace(tiny_model_config, vocab_size=0))
