"""What evaluation/generate.py promises: the KV cache changes speed, never tokens; sampling
settings do what they say; streamed text equals the decoded text.

    python -m pytest tests/test_generate.py -q
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from config import GenerationConfig, ModelConfig
from errors import ConfigurationError
from evaluation.generate import TextStream
from models.architectures.gpt import GPT
from runtime.sampling import apply_repetition_penalty, generate_tokens, sample_next_token

SAMPLING_KEYS = {"temperature", "top_k", "top_p", "repetition_penalty"}


def generate(model: GPT, prompt: list[int], n: int, **options: object) -> list[int]:
    """generate_tokens with n new tokens; sampling options go into its GenerationConfig (no
    repetition penalty unless asked), the others (use_cache, seed, ...) are passed as they are."""
    settings = GenerationConfig(max_new_tokens=n, repetition_penalty=1.0, **{
        key: value for key, value in options.items() if key in SAMPLING_KEYS})
    rest = {key: value for key, value in options.items() if key not in SAMPLING_KEYS}
    return list(generate_tokens(model, prompt, settings, **rest))


def sharp_random_model(config: ModelConfig) -> GPT:
    """A random model whose attention depends strongly on content and position. (At the usual
    initialisation attention is nearly uniform, so a KV cache that got positions wrong would
    still give the same tokens, and the tests below would prove nothing.)"""
    model = GPT(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                gain = 4.0 if name.endswith(("q_proj.weight", "k_proj.weight")) else 1.0
                p.normal_(0.0, gain / p.size(1) ** 0.5)
    return model


GREEDY = dict(temperature=0.0)
PURE_SAMPLING = dict(temperature=1.0, top_k=0, top_p=1.0)


# ---- the KV cache ----


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
@pytest.mark.parametrize("prompt_length", [5, 40], ids=["short-prompt", "prompt-over-context"])
def test_cache_gives_the_same_tokens(tiny_model_config: ModelConfig, kv_heads: int,
                                     prompt_length: int) -> None:
    """Greedy and seeded sampling, through several context overflows (context 16, 60 tokens)."""
    config = dataclasses.replace(tiny_model_config, kv_heads=kv_heads, max_length=16)
    model = sharp_random_model(config)
    prompt = torch.randint(0, 256, (prompt_length,)).tolist()
    for settings in (GREEDY, dict(PURE_SAMPLING, seed=3)):
        cached = generate(model, prompt, 60, use_cache=True, **settings)
        uncached = generate(model, prompt, 60, use_cache=False, **settings)
        assert cached == uncached
        assert len(cached) == 60
    assert len(set(cached)) > 10  # sampling from a random model: varied tokens, a real check


def test_trained_model_continues_across_context_overflow(cycle_model: tuple) -> None:
    """The cycle model (context 64) keeps continuing its cycle for 150 tokens: the window is cut
    and re-prefilled twice, and positions restart correctly each time."""
    model, seq = cycle_model
    for use_cache in (True, False):
        out = generate(model, seq[3:8].tolist(), 150, use_cache=use_cache, **GREEDY)
        assert out == seq[8:158].tolist()


def test_stop_ids_end_generation(cycle_model: tuple) -> None:
    model, seq = cycle_model
    out = generate(model, seq[:5].tolist(), 100, stop_ids=[int(seq[9])], **GREEDY)
    assert out == seq[5:9].tolist()  # the stop token itself is not yielded


def test_model_mode_is_restored(tiny_model_config: ModelConfig) -> None:
    model = GPT(tiny_model_config).train()
    generate(model, [1, 2, 3], 3)
    assert model.training
    model.eval()
    generate(model, [1, 2, 3], 3)
    assert not model.training


def test_empty_prompt_and_bad_settings(tiny_model_config: ModelConfig) -> None:
    model = GPT(tiny_model_config)
    assert len(generate(model, [1, 2], 1)) == 1
    with pytest.raises(ConfigurationError, match="prompt is empty"):
        generate_tokens(model, [], GenerationConfig())  # raised at the call, before iterating
    # The settings are checked where they are made, once (config.py GenerationConfig).
    for bad, name in ((dict(temperature=-1), "temperature"), (dict(top_p=0.0), "top_p"),
                      (dict(max_new_tokens=0), "max_new_tokens"),
                      (dict(temperature=float("nan")), "temperature"),
                      (dict(repetition_penalty=float("inf")), "repetition_penalty")):
        with pytest.raises(ConfigurationError, match=f"generation.{name}"):
            GenerationConfig(**bad)


# ---- sampling ----


def test_top_k_1_and_tiny_top_p_are_greedy(tiny_model_config: ModelConfig) -> None:
    model = GPT(tiny_model_config)
    prompt = torch.randint(0, 256, (8,)).tolist()
    greedy = generate(model, prompt, 30, **GREEDY)
    assert generate(model, prompt, 30, temperature=1.0, top_k=1, top_p=1.0, seed=1) == greedy
    assert generate(model, prompt, 30, temperature=1.0, top_k=0, top_p=1e-6, seed=1) == greedy


def test_seeded_sampling_is_reproducible(tiny_model_config: ModelConfig) -> None:
    model = GPT(tiny_model_config)
    a = generate(model, [5, 6, 7], 30, **PURE_SAMPLING, seed=11)
    b = generate(model, [5, 6, 7], 30, **PURE_SAMPLING, seed=11)
    c = generate(model, [5, 6, 7], 30, **PURE_SAMPLING, seed=12)
    assert a == b
    assert a != c
    generator = torch.Generator().manual_seed(11)
    assert generate(model, [5, 6, 7], 30, **PURE_SAMPLING, generator=generator) == a


def test_top_k_and_top_p_keep_the_right_tokens() -> None:
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    draws = lambda **kw: {  # noqa: E731
        sample_next_token(logits, None, temperature=1.0, generator=g, **kw)
        for g in [torch.Generator().manual_seed(0)] for _ in range(300)
    }
    assert draws(top_k=2, top_p=1.0) == {0, 1}
    assert draws(top_k=0, top_p=0.7) == {0, 1}  # 0.5 < 0.7 <= 0.5 + 0.3
    assert draws(top_k=0, top_p=0.81) == {0, 1, 2}
    assert draws(top_k=0, top_p=1.0) == {0, 1, 2, 3}


def test_repetition_penalty_lowers_seen_tokens() -> None:
    logits = torch.tensor([2.0, -2.0, 1.0, 0.5])
    out = apply_repetition_penalty(logits.clone(), torch.tensor([0, 1, 1]), 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0, 0.5]  # positive / 2, negative * 2, unseen unchanged
    # Greedy picks token 0 without the penalty and token 2 with it.
    assert sample_next_token(logits, torch.tensor([0]), temperature=0.0) == 0
    assert sample_next_token(logits, torch.tensor([0]), temperature=0.0,
                             repetition_penalty=2.5) == 2


# ---- streaming text ----


def _byte_level_bpe(texts: list[str]):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def _wordpiece(texts: list[str]):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=200,
                                                             special_tokens=["[UNK]"]))
    return tok


TEXTS = ["Once upon a time, a small robot 🤖 lived in Zürich.", "日本語のテキスト and more text.",
         "The café served crème brûlée — twice! 🎉🎉"] * 20


@pytest.mark.parametrize("make_tokenizer", [_byte_level_bpe, _wordpiece], ids=["bpe", "wordpiece"])
def test_streamed_text_equals_decoded_text(make_tokenizer) -> None:
    """Multi-byte characters split over several tokens are never printed half-done, and the
    pieces add up to exactly the decoded text."""
    tok = make_tokenizer(TEXTS)
    prompt_ids = tok.encode("Once upon").ids
    new_ids = tok.encode(" a time, 🤖 in Zürich 日本語 crème brûlée 🎉").ids
    stream = TextStream(tok, prompt_ids)
    pieces = [stream.push(i) for i in new_ids] + [stream.flush()]
    assert not any("\ufffd" in piece for piece in pieces)
    full = tok.decode(prompt_ids + new_ids)
    assert tok.decode(prompt_ids) + "".join(pieces) == full
