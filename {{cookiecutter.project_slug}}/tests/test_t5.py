"""T5, checked the way a user would notice it failing: the model is Hugging Face's
T5ForConditionalGeneration (same logits, same position buckets), the KV-cached decoder writes what
the uncached one writes, span corruption cuts and restores text exactly, training makes it
write the missing spans, `make generate` fills sentinels and runs text to text, `make chat` works
as text to text, `make export` gives a folder whose model.generate() writes what ours writes, and
bad inputs get a clear error.

    python -m pytest tests/test_t5.py            # ~2 minutes on 2 CPU cores
    python -m pytest tests/test_t5.py -m "not slow"

(Resuming bit for bit, the checkpoints' safety and the rest of the bad-input catalogue are the
same code for every architecture: tests/test_training.py, test_bad_inputs.py, ... run them on
this project's T5.)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

import bench
from config import GenerationConfig, ModelConfig
from conftest import (
    evaluations,
    free_port,
    http_json,
    make_cycle_sequence,
    run_in,
    serve_cog,
    trained_project,
)
from data.dataset import ShortFirst, TrainBatches
from data.span_corruption import SpanCorruption
from exporters.hf import check_hf_folder, hf_state_dict, special_tokens_of, t5_config
from models.architectures.t5 import T5, relative_position_bucket
from runtime.checkpoints import load_trained_model
from runtime.seq2seq import evaluate_spans, generate_seq2seq, split_spans

PROJECT = Path(__file__).resolve().parents[1]
EOS, PAD = 0, 1  # "</s>", "<pad>": the first special tokens of the tokenizers here
SENTINELS = list(range(3, 103))  # <extra_id_0> = 3, ... <extra_id_99> (as in a trained one)
PROMPT = "Once upon a time, there was a <extra_id_0> who lived in a <extra_id_1>."
MICRO = {
    "model": {"layers": 2, "heads": 2, "dim": 32, "mlp_dim": 64, "max_length": 64},
    "tokenizer": {"vocab_size": 500},
    "data": {"sample_size_mb": 0.3},
    "training": {"batch_size": 16, "max_steps": 200, "warmup_steps": 10, "learning_rate": 1e-2,
                 "min_lr": 1e-3, "eval_interval": 100, "eval_batches": 4, "log_interval": 50,
                 "threads": 1, "device": "cpu", "precision": "fp32"},
    "checkpoints": {"save_interval": 100},
    "logging": {"progress_bar": False},
    "generation": {"prompt": PROMPT, "max_new_tokens": 24},
}


@pytest.fixture
def config() -> ModelConfig:
    return ModelConfig(architecture="t5", layers=2, heads=4, dim=32, mlp_dim=64,
                       max_length=64, vocab_size=256, norm_eps=1e-6)


def random_t5(config: ModelConfig) -> T5:
    """A T5 whose norms are random too, so no term of the math hides behind a weight of 1."""
    model = T5(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    return model


def special() -> object:
    """The special tokens of a 256-token T5 vocabulary laid out as a trained one is."""
    from tokenizers import models

    names = ["</s>", "<pad>", "<unk>"] + [f"<extra_id_{i}>" for i in range(100)]
    vocab = {t: i for i, t in enumerate(names)}
    vocab.update({f"w{i}": i for i in range(len(names), 256)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.add_special_tokens(names)
    return special_tokens_of(tok, names[:3])


def hugging_face_t5(config: ModelConfig) -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    return transformers.T5ForConditionalGeneration(
        transformers.T5Config(**t5_config(config, special()))).eval()


# ---- 1. the model is Hugging Face's T5ForConditionalGeneration ----


def test_matches_hugging_face_t5_for_conditional_generation(config: ModelConfig) -> None:
    ours, theirs = random_t5(config), hugging_face_t5(config)
    missing, unexpected = theirs.load_state_dict(hf_state_dict(ours), strict=False)
    assert unexpected == []
    assert set(missing) == {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
                            "lm_head.weight"}  # all three are `shared` (tied)
    theirs.tie_weights()
    x = torch.randint(0, 256, (3, 50))
    mask = torch.ones_like(x)
    mask[1, 40:] = 0  # padding at the end of one input
    labels = torch.randint(0, 256, (3, 12))
    decoder_input_ids = torch.cat([torch.full((3, 1), PAD), labels[:, :-1]], dim=1)
    with torch.no_grad():
        logits, loss = ours(x, decoder_input_ids, labels=labels, attention_mask=mask)
        out = theirs(input_ids=x, attention_mask=mask, labels=labels)  # shifts with <pad>
    assert (logits - out.logits).abs().max().item() <= 1e-5
    assert abs(loss.item() - out.loss.item()) <= 1e-5


def test_tensor_names_are_t5_s(config: ModelConfig) -> None:
    theirs = hugging_face_t5(config)
    tied = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}
    assert set(hf_state_dict(T5(config))) == set(theirs.state_dict()) - tied


@pytest.mark.parametrize("bidirectional", [True, False], ids=["encoder", "decoder"])
def test_position_buckets_are_t5_s(bidirectional: bool) -> None:
    transformers = pytest.importorskip("transformers")
    distances = torch.arange(-300, 300)[None, :] - torch.arange(0, 8)[:, None]
    theirs = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(
        distances, bidirectional=bidirectional, num_buckets=32, max_distance=128)
    assert torch.equal(relative_position_bucket(distances, bidirectional, 32, 128), theirs)


def test_decoder_is_causal_and_encoder_sees_everything(config: ModelConfig) -> None:
    model = random_t5(config)
    x, d = torch.randint(0, 256, (1, 20)), torch.randint(0, 256, (1, 10))
    with torch.no_grad():
        base = model(x, d)[0]
        later = d.clone()
        later[0, -1] = (d[0, -1] + 1) % 256
        assert torch.equal(model(x, later)[0][0, :-1], base[0, :-1])  # the past is untouched
        other = x.clone()
        other[0, -1] = (x[0, -1] + 1) % 256
        assert not torch.allclose(model(other, d)[0][0, 0], base[0, 0])  # reads all the input


def test_the_kv_cache_gives_the_same_logits_and_tokens(config: ModelConfig) -> None:
    model = random_t5(config)
    x, d = torch.randint(0, 256, (2, 30)), torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        full = model.decode(d, model.encode(x))
        encoded, cache = model.encode(x), model.new_kv_cache(2, 16)
        steps = [model.decode(d[:, :5], encoded, cache=cache)]  # a prefill, then one at a time
        steps += [model.decode(d[:, t:t + 1], encoded, cache=cache) for t in range(5, 16)]
    assert (torch.cat(steps, dim=1) - full).abs().max().item() < 1e-5
    greedy = GenerationConfig(max_new_tokens=20, temperature=0.0, repetition_penalty=1.0)
    with_cache = list(generate_seq2seq(model, x[0].tolist(), greedy, PAD))
    without = list(generate_seq2seq(model, x[0].tolist(), greedy, PAD, use_cache=False))
    assert with_cache == without and len(with_cache) == 20


# ---- 2. span corruption ----


def corruption() -> SpanCorruption:
    return SpanCorruption(0.15, 3.0, SENTINELS, eos_id=EOS, decoder_start_id=PAD)


def restore(inputs: list[int], labels: list[int]) -> list[int]:
    """Put each span back where its sentinel is: the window the batch was made from."""
    spans = split_spans(labels, SENTINELS, EOS)
    number = {token: i for i, token in enumerate(SENTINELS)}
    out = []
    for token in inputs[:-1]:  # the last one is </s>
        out += spans[number[token]] if token in number else [token]
    return out


def test_span_corruption_cuts_15_percent_in_spans_and_the_labels_restore_it() -> None:
    make = corruption()
    raw, target_length = make.lengths(max_length=256)
    assert make.sizes(raw) == (256, target_length)  # the input fills the context exactly
    rng = np.random.default_rng(0)
    windows = rng.integers(200, 256, size=(64, raw))
    batch = make(windows, rng)
    assert batch["input_ids"].shape == (64, 256) and batch["labels"].shape == (64, target_length)
    noise, spans = make.counts(raw)
    assert noise == round(0.15 * raw) and spans == round(noise / 3.0)
    for row, inputs, labels in zip(windows, batch["input_ids"], batch["labels"], strict=True):
        assert restore(inputs.tolist(), labels.tolist()) == row.tolist()
        assert inputs[-1] == labels[-1] == EOS
        used = [t for t in labels if t in SENTINELS]
        assert used == SENTINELS[:spans]  # <extra_id_0>, <extra_id_1>, ... in order
        assert [t for t in inputs if t in SENTINELS] == used
    starts = np.full((64, 1), PAD)
    assert (batch["decoder_input_ids"] == np.concatenate(
        [starts, batch["labels"][:, :-1]], axis=1)).all()
    lengths = [len(v) for row in batch["labels"]
               for v in split_spans(row.tolist(), SENTINELS, EOS).values()]
    assert 2.5 < np.mean(lengths) < 3.5  # mean span length 3


@pytest.mark.parametrize("mean_span_length", [1.0, 3.0, 8.0])
def test_the_input_is_exactly_max_length_for_any_span_length(mean_span_length: float) -> None:
    """Single-token spans (each costs a sentinel) make the input longer than the window: the
    window shrinks to fit."""
    make = SpanCorruption(0.15, mean_span_length, SENTINELS, eos_id=EOS, decoder_start_id=PAD)
    raw, out = make.lengths(64)
    windows = np.random.default_rng(0).integers(200, 256, size=(4, raw))
    batch = make(windows, np.random.default_rng(1))
    assert batch["input_ids"].shape == (4, 64) and batch["labels"].shape == (4, out)


class Scripted(torch.nn.Module):
    """A stand-in for T5 that writes the given outputs (B, T) whatever its input, greedy or
    teacher-forced: what evaluate_spans scores is then known exactly."""

    def __init__(self, outputs: torch.Tensor, vocab_size: int = 256) -> None:
        super().__init__()
        self.logits = torch.nn.functional.one_hot(outputs, vocab_size).float()  # (B, T, V)
        self.unused = torch.nn.Parameter(torch.zeros(1))  # a device for the evaluation

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        return input_ids

    def new_kv_cache(self, batch_size: int, max_length: int) -> object:
        return type("Cache", (), {"pos": 0})()

    def decode(self, tokens: torch.Tensor, encoded: torch.Tensor, cache: object) -> torch.Tensor:
        cache.pos += tokens.size(1)
        return self.logits[:, cache.pos - tokens.size(1) : cache.pos]

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor) -> tuple:
        return self.logits[:, : decoder_input_ids.size(1)], None


def test_span_match_is_the_share_of_spans_written_exactly() -> None:
    """val_span_match counts a span right only when every token of it is, keyed by its
    sentinel: the truth scores 1; one wrong token in one span of each row loses that span
    only; an output cut short by </s> loses every span after the cut."""
    make = corruption()
    raw, _ = make.lengths(64)
    windows = np.random.default_rng(0).integers(200, 256, size=(4, raw))
    batch = {k: torch.from_numpy(v) for k, v in make(windows, np.random.default_rng(1)).items()}
    labels = batch["labels"]
    spans = make.counts(raw)[1]  # spans per row

    def score(outputs: torch.Tensor) -> float:
        return evaluate_spans(Scripted(outputs), [batch], torch.device("cpu"), PAD, EOS,
                              SENTINELS)["val_span_match"]

    assert spans >= 3 and score(labels) == 1.0
    one_wrong = labels.clone()
    one_wrong[:, 1] = 255 - one_wrong[:, 1] % 2  # the first span's first token: another one
    assert score(one_wrong) == pytest.approx(1 - 1 / spans)
    cut = labels.clone()
    second = (torch.isin(labels, torch.tensor(SENTINELS)).cumsum(1) == 2).int().argmax(1)
    for row, at in enumerate(second.tolist()):
        cut[row, at] = EOS  # stop where the second span's sentinel is: only the first counts
    assert score(cut) == pytest.approx(1 / spans)


def test_spans_come_from_the_batches_generator_so_resume_repeats_them() -> None:
    make = corruption()
    tokens = np.random.default_rng(1).integers(200, 256, size=5000).astype(np.uint16)
    raw, _ = make.lengths(32)
    batches = TrainBatches(tokens, batch_size=4, window=raw, seed=3, make_batch=make)
    batches.next_batch()
    state = batches.state_dict()
    expected = batches.next_batch()
    again = TrainBatches(tokens, batch_size=4, window=raw, seed=99, make_batch=make)
    again.load_state_dict(state)
    got = again.next_batch()
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_the_warm_up_s_short_inputs_come_first_then_full_length(make_tiny_config,
                                                                tiny_tokenizer) -> None:
    """objective.short_sequence_length: encoder inputs of exactly that many tokens, as many
    more rows as keep the text per step, for short_sequence_steps optimizer steps (x the
    micro-batches of each), then inputs of model.max_length."""
    from runtime.objectives import objective_for

    cfg = make_tiny_config(**{"objective.short_sequence_length": 16,
                              "objective.short_sequence_steps": 2,
                              "training.gradient_accumulation": 2, "training.batch_size": 4,
                              "model.max_length": 64})
    objective = objective_for(cfg, dataclasses.replace(cfg.model, vocab_size=256),
                              tiny_tokenizer)
    make = objective.make_batch
    assert objective.window == ShortFirst(make.lengths(64)[0], make.lengths(16)[0], 4)
    tokens = np.random.default_rng(1).integers(110, 256, size=5000).astype(np.uint16)
    batches = TrainBatches(tokens, batch_size=4, window=objective.window, seed=3,
                           make_batch=make)
    shapes = [tuple(batches.next_batch()["input_ids"].shape) for _ in range(6)]
    rows = round(4 * make.lengths(64)[0] / make.lengths(16)[0])
    assert shapes == [(rows, 16)] * 4 + [(4, 64)] * 2


def test_a_tiny_t5_learns_to_write_the_missing_spans(config: ModelConfig) -> None:
    """On a sequence where each token determines the next, a cut-out span can be recovered
    from the token before its sentinel. Untrained, ~1 output token in 256 is right; guessing
    the commonest ones, a few in 100; the trained model writes most of them right (teacher-
    forced; where a span ends, and so when the next sentinel comes, is random)."""
    torch.manual_seed(0)
    seq = make_cycle_sequence(vocab=256)
    seq = torch.where(seq < 110, seq + 110, seq).numpy().astype(np.uint16)  # no special ids
    make = corruption()
    raw, _ = make.lengths(32)
    batches = TrainBatches(seq, batch_size=16, window=raw, seed=0, make_batch=make)
    model = T5(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        _, loss = model(**batches.next_batch())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    batch = batches.next_batch()
    with torch.no_grad():
        logits, _ = model(batch["input_ids"], batch["decoder_input_ids"])
    accuracy = (logits.argmax(-1) == batch["labels"]).float().mean().item()
    assert accuracy > 0.5, accuracy


def test_the_benchmark_counts_encoder_and_decoder_flops_from_the_real_model(
        config: ModelConfig) -> None:
    model = T5(config)
    encoder = sum(p.numel() for n, p in model.encoder.named_parameters()
                  if "relative_attention_bias" not in n)  # a lookup
    decoder = sum(p.numel() for n, p in model.decoder.named_parameters()
                  if "relative_attention_bias" not in n)
    raw, S, T, d, L = 70, 64, 14, 32, 2
    expected = (6 * (encoder * S + (decoder + 256 * d) * T)
                + 12 * L * d * (S * S + T * T + T * S)) / raw
    assert bench.flops_per_token(config, model.num_parameters(), (raw, S, T)) == \
        pytest.approx(expected)


# ---- 3. a project: train, evaluate, fill in spans, text to text, chat, export ----


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A micro T5 project (unigram, built-in stories) trained for 200 steps, exported."""
    return trained_project(tmp_path_factory.mktemp("t5") / "my-t5", MICRO)


def test_training_makes_it_write_the_spans(trained: Path) -> None:
    first, last = evaluations(trained)[0], evaluations(trained)[-1]
    assert set(last) >= {"step", "val_loss", "val_ppl", "val_span_match"}
    assert "val_bpb" not in last
    assert last["val_loss"] < first["val_loss"]
    assert last["val_loss"] < np.log(500) - 1.0  # an untrained model: ~ln(vocabulary)
    result = run_in(trained, "-m", "evaluation.evaluate", "--max-batches", "4", "--json", "e.json")
    assert result.returncode == 0, result.stderr
    report = json.loads((trained / "e.json").read_text())
    assert report["objective"] == "span-corruption"
    assert report["metrics"]["val_loss"] == pytest.approx(last["val_loss"], abs=1e-5)
    assert "span match:" in result.stdout


def ours(folder: Path) -> tuple[torch.nn.Module, Tokenizer]:
    model, _ = load_trained_model("auto", folder / "checkpoints", "cpu")
    return model, Tokenizer.from_file(str(folder / "tokenizer" / "tokenizer.json"))


def test_generate_fills_sentinels_and_answers_plain_text(trained: Path) -> None:
    model, tokenizer = ours(trained)
    ids = [*tokenizer.encode(PROMPT, add_special_tokens=False).ids, EOS]
    greedy = GenerationConfig(max_new_tokens=24, temperature=0.0, repetition_penalty=1.0)
    written = list(generate_seq2seq(model, ids, greedy, PAD, (EOS,)))
    spans = split_spans(written, [tokenizer.token_to_id(f"<extra_id_{i}>") for i in range(100)])
    result = run_in(trained, "-m", "evaluation.generate", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "<extra_id_" not in lines[0] and lines[0].startswith("Once upon a time, there was a [")
    for number in (0, 1):
        text = tokenizer.decode(spans.get(number, [])).strip()
        assert f"  <extra_id_{number}>: {text!r}" in lines
    plain = run_in(trained, "-m", "evaluation.generate", "--prompt", "Once upon a time",
                "--temperature", "0")
    assert plain.returncode == 0 and "tokens/s]" in plain.stderr, plain.stderr
    uncached = run_in(trained, "-m", "evaluation.generate", "--prompt", "Once upon a time",
                   "--temperature", "0", "--no-cache")
    assert uncached.stdout == plain.stdout


def test_chat_is_text_to_text(trained: Path) -> None:
    result = run_in(trained, str(PROJECT / "chat.py"), "--temperature", "0", "--max-tokens", "12",
                 stdin="The cat <extra_id_0> the mat.\n/save talk.txt\n")
    assert result.returncode == 0, result.stderr
    assert "text to text" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stdout.splitlines()) == 1  # one answer
    assert (trained / "talk.txt").read_text().startswith("User: The cat <extra_id_0> the mat.")


def test_transformers_loads_the_export_and_writes_what_we_write(trained: Path) -> None:
    transformers = pytest.importorskip("transformers")
    hf = trained / "export" / "hf"
    config = json.loads((hf / "config.json").read_text())
    assert check_hf_folder(hf) == config  # what `make deploy` checks before an upload
    assert config["architectures"] == ["T5ForConditionalGeneration"] and "auto_map" not in config
    assert config["feed_forward_proj"] == "gated-gelu" and config["decoder_start_token_id"] == PAD
    theirs = transformers.AutoModelForSeq2SeqLM.from_pretrained(hf).eval()
    their_tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    model, tokenizer = ours(trained)
    x = torch.randint(0, model.config.vocab_size, (2, model.config.max_length))
    d = torch.randint(0, model.config.vocab_size, (2, 10))
    with torch.no_grad():
        difference = (model(x, d)[0] - theirs(input_ids=x, decoder_input_ids=d).logits).abs()
    assert difference.max().item() <= 1e-5
    for text in ("Hello, world!", PROMPT, "It's 3 o'clock."):
        expected = [*tokenizer.encode(text, add_special_tokens=False).ids, EOS]
        assert their_tokenizer(text)["input_ids"] == expected, text
    # transformers 5 has no pipeline("text2text-generation"): generate() is what it offers.
    ids = their_tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        out = theirs.generate(ids, max_new_tokens=24, do_sample=False)[0].tolist()
    greedy = GenerationConfig(max_new_tokens=24, temperature=0.0, repetition_penalty=1.0)
    mine = list(generate_seq2seq(model, ids[0].tolist(), greedy, PAD, (EOS,)))
    assert out[1:1 + len(mine)] == mine  # after the start token; theirs may go on with </s>
    card = (hf / "README.md").read_text()
    assert "pipeline_tag: text2text-generation" in card and "AutoModelForSeq2SeqLM" in card
    assert "Validation spans exactly right" in card


@pytest.mark.parametrize(("args", "says"), [
    (("--prompt", "w " * 300), "more than the model's context of 64"),
    pytest.param(("--top-p", "0"), "generation.top_p must be in [0.000001, 1]",
                 marks=pytest.mark.slow),
])
def test_generate_refuses_clearly(trained: Path, args: tuple, says: str) -> None:
    result = run_in(trained, "-m", "evaluation.generate", *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and says in errors[0], result.stderr


# ---- 4. Replicate ----


@pytest.mark.slow
def test_the_replicate_predictor_writes_the_spans_over_http(trained: Path,
                                                            tmp_path: Path) -> None:
    pytest.importorskip("cog")
    pytest.importorskip("transformers")
    folder = tmp_path / "p"
    shutil.copytree(trained, folder)
    run_in(folder, str(PROJECT / "deploy.py"), "deploy", "--target", "replicate")
    target = folder / "deploy" / "replicate"
    with serve_cog(target, free_port()) as url:
        answer = http_json(f"{url}/predictions", {"input": {
            "prompt": PROMPT, "max_new_tokens": 24, "temperature": 0}})
    assert answer["status"] == "succeeded", answer
    model, tokenizer = ours(trained)
    ids = [*tokenizer.encode(PROMPT, add_special_tokens=False).ids, EOS]
    greedy = GenerationConfig(max_new_tokens=24, temperature=0.0, repetition_penalty=1.0)
    mine = list(generate_seq2seq(model, ids, greedy, PAD, (EOS,)))
    assert answer["output"] == tokenizer.decode(mine, skip_special_tokens=False)
