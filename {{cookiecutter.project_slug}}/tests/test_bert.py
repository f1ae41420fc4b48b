"""BERT, checked the way a user would notice it failing: each encoder is its Hugging Face class
(model.variant 'modernbert': ModernBertForMaskedLM, 'bert': BertForMaskedLM; same logits), the
masking follows BERT's rule, the short sequences of the warm-up come first and a resumed run
switches to full length at the same step, training makes it fill in masks,
`make generate` fills them in, `make chat` says it cannot chat, `make export` gives a folder that
transformers loads and whose pipeline("fill-mask") gives the same answers, and bad inputs get a
clear error.

    python -m pytest tests/test_bert.py            # ~1-2 minutes on 2 CPU cores
    python -m pytest tests/test_bert.py -m "not slow"

(Resuming bit for bit, the checkpoints' safety and the rest of the bad-input catalogue are the
same code for every architecture: tests/test_training.py, test_bad_inputs.py, ... run them on
this project's BERT.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from config import GenerationConfig, ModelConfig
from conftest import (
    evaluations,
    free_port,
    http_json,
    read_records,
    run_in,
    serve_cog,
    trained_project,
)
from data.dataset import ShortFirst, TrainBatches
from data.masked_lm import MaskedLM
from exporters.hf import (
    check_hf_folder,
    hf_config,
    hf_state_dict,
    special_tokens_of,
    write_hf_folder,
)
from models.architectures.bert import BERT
from models.build import build_model
from runtime.checkpoints import load_trained_model
from runtime.fill_mask import fill_masks
from training.callbacks.base import Callback

PROJECT = Path(__file__).resolve().parents[1]
SPECIAL = ["[SEP]", "[CLS]", "[MASK]", "[PAD]", "[UNK]"]  # ids 0-4 in the tokenizers here
PROMPT = "Once upon a time, there was a little [MASK]."
MICRO = {
    "model": {"layers": 2, "heads": 2, "dim": 32, "mlp_dim": 128, "max_length": 64},
    "tokenizer": {"vocab_size": 400},
    "data": {"sample_size_mb": 0.3},
    "training": {"batch_size": 16, "max_steps": 200, "warmup_steps": 10, "learning_rate": 3e-3,
                 "min_lr": 3e-4, "eval_interval": 100, "eval_batches": 4, "log_interval": 50,
                 "threads": 1, "device": "cpu", "precision": "fp32"},
    "checkpoints": {"save_interval": 100},
    "logging": {"progress_bar": False},
    "generation": {"prompt": PROMPT},
}


# model.variant -> (its Hugging Face class, config class, the tied decoder weight it leaves out)
HF_CLASSES = {"modernbert": ("ModernBertForMaskedLM", "ModernBertConfig", "decoder.weight"),
              "bert": ("BertForMaskedLM", "BertConfig", "cls.predictions.decoder.weight")}


@pytest.fixture(params=["modernbert", "bert"])
def config(request: pytest.FixtureRequest) -> ModelConfig:
    """A micro model of each encoder (3 layers: ModernBERT's first layer differs)."""
    eps = 1e-12 if request.param == "bert" else 1e-5
    return ModelConfig(architecture="bert", variant=request.param, layers=3, heads=4, dim=32,
                       mlp_dim=64, max_length=64, vocab_size=256, norm_eps=eps)


def random_bert(config: ModelConfig) -> torch.nn.Module:
    """A BERT whose every weight is random (norms and biases too), so no term of the math can
    hide behind an initial 0 or 1."""
    model = build_model(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                is_scale = "norm" in name.lower() and name.endswith("weight")
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if is_scale else 0.0))
    return model


def hugging_face_model(config: ModelConfig) -> torch.nn.Module:
    """The Hugging Face class of config.variant, built from the config.json we export."""
    transformers = pytest.importorskip("transformers")
    model_class, config_class, _ = HF_CLASSES[config.variant]
    special = special_tokens_of(_word_tokenizer(), SPECIAL)
    hf = getattr(transformers, config_class)(**hf_config(config, special))
    return getattr(transformers, model_class)(hf)


# ---- 1. the model is Hugging Face's ModernBertForMaskedLM / BertForMaskedLM ----


def test_matches_its_hugging_face_class(config: ModelConfig) -> None:
    ours = random_bert(config)
    assert type(ours).__name__ == {"modernbert": "ModernBERT", "bert": "BERT"}[config.variant]
    theirs = hugging_face_model(config)
    missing, unexpected = theirs.load_state_dict(hf_state_dict(ours), strict=False)
    assert unexpected == [] and missing == [HF_CLASSES[config.variant][2]]  # tied: ours
    theirs.tie_weights()
    theirs.eval()
    x = torch.randint(0, 256, (3, 50))
    mask = torch.ones_like(x)
    mask[1, 40:] = 0  # padding at the end of one row
    labels = torch.full_like(x, -100)
    labels[:, 7] = x[:, 7]
    with torch.no_grad():
        logits, _ = ours(x, attention_mask=mask)
        scored_logits, loss = ours(x, labels=labels, attention_mask=mask)
        out = theirs(input_ids=x, attention_mask=mask, labels=labels)
    assert (logits - out.logits)[mask.bool()].abs().max().item() <= 1e-5
    assert abs(loss.item() - out.loss.item()) <= 1e-5
    # With labels, only the hidden positions go through the head: the same scores as theirs.
    assert scored_logits.shape == (3, logits.size(-1))
    assert (scored_logits - out.logits[:, 7]).abs().max().item() <= 1e-5


def test_tensor_names_are_its_hugging_face_class_s(config: ModelConfig) -> None:
    theirs = hugging_face_model(config)
    ours = set(hf_state_dict(build_model(config)))
    assert ours == set(theirs.state_dict()) - {HF_CLASSES[config.variant][2]}


def test_the_memory_estimate_counts_the_mlm_head_on_the_hidden_tokens_only(
        config: ModelConfig) -> None:
    """make summary and the DDP/FSDP choice (models/memory.py): the head's activations, its
    logits over the whole vocabulary above all, exist for the hidden tokens only."""
    from models.memory import activation_bytes

    big = dataclasses.replace(config, vocab_size=50000)
    every, hidden = (activation_bytes(big, 8, "fp32", scored_share=share) for share in (1, 0.15))
    per_token = 50000 * (4 + 4 + 4) + 3 * 32 * 4  # logits, log-probs, gradient; dense, GELU, norm
    assert every - hidden == pytest.approx(0.85 * 8 * 64 * per_token, abs=1)
    assert activation_bytes(big, 8, "fp32") > hidden  # unknown share: the most it can be


def test_the_default_variant_is_the_original_bert_for_old_checkpoints() -> None:
    """A checkpoint saved before model.variant existed has no such key: it is a BERT."""
    assert isinstance(build_model(ModelConfig(architecture="bert", vocab_size=300)), BERT)


def test_every_token_sees_the_whole_sequence(config: ModelConfig) -> None:
    """An encoder: changing a later token changes an earlier position's logits (unlike gpt)."""
    model = random_bert(config)
    x = torch.randint(5, 256, (1, 20))
    y = x.clone()
    y[0, -1] = (x[0, -1] + 1) % 256
    with torch.no_grad():
        assert not torch.allclose(model(x)[0][0, 0], model(y)[0][0, 0])


def test_untrained_loss_is_a_uniform_guess(config: ModelConfig) -> None:
    model = build_model(config)
    x = torch.randint(5, 256, (4, 64))
    with torch.no_grad():
        _, loss = model(x, labels=x)
    assert abs(loss.item() - math.log(256)) < 0.3


# ---- 2. the masking follows BERT's rule ----


def _word_tokenizer() -> Tokenizer:
    """256 tokens, BERT's special tokens first (ids 0-4)."""
    from tokenizers import models

    vocab = {token: i for i, token in enumerate(SPECIAL)}
    vocab.update({f"w{i}": i for i in range(len(SPECIAL), 256)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.add_special_tokens(SPECIAL)
    return tok


def test_masking_hides_15_percent_80_10_10_and_never_a_special_token() -> None:
    make = MaskedLM(0.15, cls_id=1, mask_id=2, special_ids=range(5), vocab_size=256)
    rng = np.random.default_rng(0)
    windows = rng.integers(5, 256, size=(400, 99))
    windows[:, ::10] = 0  # [SEP]s where documents end: never hidden
    batch = make(windows, rng)
    ids, labels = batch["input_ids"], batch["labels"]
    assert ids.shape == labels.shape == (400, 100) and (ids[:, 0] == 1).all()  # [CLS] first
    chosen = labels != -100
    # 15% of the window (99 -> 15 tokens), the same in every row: rows weigh the same in the loss
    assert (chosen.sum(axis=1) == round(0.15 * 99)).all()
    original = np.concatenate([np.ones((400, 1), dtype=int), windows], axis=1)
    assert (labels[chosen] == original[chosen]).all()
    assert not chosen[original < 5].any()  # [CLS], [SEP]: never
    masked = (ids == 2) & chosen
    kept = (ids == original) & chosen
    swapped = chosen & ~masked & ~kept
    shares = np.array([masked.sum(), swapped.sum(), kept.sum()]) / chosen.sum()
    assert np.allclose(shares, [0.8, 0.1, 0.1], atol=0.02), shares
    assert (ids[swapped] >= 5).all()  # a random ordinary token, never a special one
    assert (ids[~chosen] == original[~chosen]).all()  # everything else untouched


def test_masking_comes_from_the_batches_generator_so_resume_repeats_it() -> None:
    make = MaskedLM(0.15, cls_id=1, mask_id=2, special_ids=range(5), vocab_size=256)
    tokens = np.random.default_rng(1).integers(5, 256, size=5000).astype(np.uint16)
    batches = TrainBatches(tokens, batch_size=4, window=31, seed=3, make_batch=make)
    batches.next_batch()
    state = batches.state_dict()
    expected = batches.next_batch()
    again = TrainBatches(tokens, batch_size=4, window=31, seed=99, make_batch=make)
    again.load_state_dict(state)
    got = again.next_batch()
    assert all(torch.equal(expected[k], got[k]) for k in ("input_ids", "labels"))


def test_a_tiny_bert_learns_to_fill_in_masks_from_their_context(config: ModelConfig) -> None:
    """Text made of runs of one token (64 copies of a token, then 64 of another, among 40): a
    hidden token is whatever surrounds it. Guessing without reading the context is right 1 time
    in 40; the trained model reads it and is right most of the time (the windows that cross from
    one run to the next are the ambiguous rest)."""
    torch.manual_seed(0)
    runs = np.random.default_rng(0).integers(0, 40, size=400) + 5  # no special ids
    seq = np.repeat(runs, 64).astype(np.uint16)
    make = MaskedLM(0.15, cls_id=1, mask_id=2, special_ids=range(5), vocab_size=256)
    batches = TrainBatches(seq, batch_size=16, window=31, seed=0, make_batch=make)
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        _, loss = model(**batches.next_batch())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    batch = batches.next_batch()
    with torch.no_grad():
        logits, _ = model(batch["input_ids"])
    scored = batch["labels"] != -100
    accuracy = (logits.argmax(-1)[scored] == batch["labels"][scored]).float().mean().item()
    assert accuracy > 0.6, accuracy


# ---- 3. the warm-up: short sequences first, then the full context ----


def test_short_sequences_come_first_with_the_same_tokens_per_step() -> None:
    make = MaskedLM(0.15, cls_id=1, mask_id=2, special_ids=range(5), vocab_size=256)
    tokens = np.random.default_rng(1).integers(5, 256, size=5000).astype(np.uint16)
    batches = TrainBatches(tokens, batch_size=4, window=ShortFirst(63, 7, short_batches=3),
                           seed=3, make_batch=make)
    shapes = [tuple(batches.next_batch()["labels"].shape) for _ in range(5)]
    # [CLS] + 7 tokens, 36 rows (36 x 7 = 4 x 63 tokens of text), then [CLS] + 63 tokens
    assert shapes == [(36, 8)] * 3 + [(4, 64)] * 2


def test_processes_read_one_processs_warm_up_batches() -> None:
    """31 // 15 = 2 rows of 15 per row of 31 (not round(31 / 15 * batch_size), which would give
    one process of 8 rows 17 and two of 4 rows 8 each): `make train NPROC=2` reads the rows one
    process of twice the batch size reads, in the warm-up too."""
    make = MaskedLM(0.15, cls_id=1, mask_id=2, special_ids=range(5), vocab_size=256)
    tokens = np.random.default_rng(1).integers(5, 256, size=5000).astype(np.uint16)

    def batches(batch_size: int, rank: int = 0, world_size: int = 1) -> TrainBatches:
        return TrainBatches(tokens, batch_size, ShortFirst(31, 15, short_batches=2), seed=3,
                            make_batch=make, rank=rank, world_size=world_size)

    one, ranks = batches(8), [batches(4, rank, 2) for rank in (0, 1)]
    for _ in range(3):  # two warm-up batches, then a full-length one
        whole = one.next_batch()
        parts = [r.next_batch() for r in ranks]
        for name in whole:
            assert torch.equal(whole[name], torch.cat([p[name] for p in parts]))


def test_the_objective_counts_the_warm_up_in_optimizer_steps(make_tiny_config) -> None:
    from runtime.objectives import objective_for

    cfg = make_tiny_config(**{"objective.short_sequence_length": 16,
                              "objective.short_sequence_steps": 30,
                              "training.gradient_accumulation": 2, "model.max_length": 64})
    model_config = dataclasses.replace(cfg.model, vocab_size=256)
    objective = objective_for(cfg, model_config, _word_tokenizer())
    # 30 steps of 2 micro-batches; [CLS] + 15 tokens, then [CLS] + 63
    assert objective.window == ShortFirst(63, 15, short_batches=60)
    off = dataclasses.replace(cfg.objective, short_sequence_length=64)  # not shorter: no warm-up
    assert objective_for(dataclasses.replace(cfg, objective=off), model_config,
                         _word_tokenizer()).window == 63


class StopAt(Callback):
    """Ask the run to stop after a step, as Ctrl+C does (it saves, then `make resume`)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, metrics) -> None:
        if trainer.step == self.step:
            trainer.request_stop("test")


def test_a_resumed_run_switches_to_full_length_at_the_same_step(micro_project: Path) -> None:
    """Stopped during the warm-up and resumed, a run trains exactly as an uninterrupted one:
    the same losses, bit for bit, on either side of the switch to full-length sequences."""
    from training.train import main

    args = ["--objective.short_sequence_length", "8", "--objective.short_sequence_steps", "12",
            "--training.log_interval", "1"]
    other = micro_project.parent / "other"
    shutil.copytree(micro_project, other)
    assert main(args) == 0
    uninterrupted = {r["step"]: r["loss"] for r in read_records(micro_project) if "loss" in r}
    os.chdir(other)
    assert main(args, extra_callbacks=[StopAt(7)]) == 0
    assert main([*args, "--resume", "auto"]) == 0
    resumed = {r["step"]: r["loss"] for r in read_records(other) if "loss" in r}
    assert sorted(resumed) == list(range(1, 21))
    assert resumed == uninterrupted


# ---- 4. a project: train, evaluate, fill in masks, export ----


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A micro BERT project (wordpiece, built-in stories) trained for 200 steps, exported."""
    return trained_project(tmp_path_factory.mktemp("bert") / "my-bert", MICRO)


def test_training_makes_it_fill_in_masks(trained: Path) -> None:
    first, last = evaluations(trained)[0], evaluations(trained)[-1]
    assert set(last) >= {"step", "val_loss", "val_ppl", "val_mlm_accuracy"}
    assert "val_bpb" not in last  # a next-token measure: not bert's
    assert last["val_loss"] < first["val_loss"]
    # Untrained: ~1/400. A micro model in 200 steps knows the frequent words, not yet the
    # context (learning from the context is the test above), and its accuracy wobbles at that
    # level from one evaluation to the next.
    assert last["val_mlm_accuracy"] > 0.01
    # make eval scores the same hidden tokens as training's evaluation did
    result = run_in(trained, "-m", "evaluation.evaluate", "--max-batches", "4", "--json", "e.json")
    assert result.returncode == 0, result.stderr
    report = json.loads((trained / "e.json").read_text())
    assert report["objective"] == "masked-lm"
    assert report["metrics"]["val_mlm_accuracy"] == pytest.approx(last["val_mlm_accuracy"],
                                                                   abs=1e-6)  # (logged: 6 digits)
    assert "mlm accuracy:" in result.stdout


def test_generate_fills_each_mask_with_its_likeliest_tokens(trained: Path) -> None:
    result = run_in(trained, "-m", "evaluation.generate", "--prompt",
                 "The [MASK] was happy. She [MASK] home.", "--top-k", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "[MASK]" not in lines[0] and lines[0].startswith("The")
    assert lines[0].endswith("home.") and "was happy." in lines[0]
    candidates = [line for line in lines if line.startswith("  [MASK] ")]
    assert [line.split(":")[0] for line in candidates] == ["  [MASK] 1", "  [MASK] 2"]
    for line in candidates:
        probabilities = [float(p) for p in line.split()[3::2]]  # '[MASK]', 'n:', 'tok' p ...
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)


def test_chat_says_an_encoder_cannot_chat(trained: Path) -> None:
    result = subprocess.run(["make", "-s", "-f", str(PROJECT / "Makefile"), "chat"], cwd=trained,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "Error: a BERT model cannot chat" in result.stderr
    assert "Suggestion: fill in masks with: make generate" in result.stderr
    assert not (PROJECT / "chat.py").exists()  # no chat code path it cannot use


def test_finetune_says_an_encoder_cannot_be_tuned_to_chat(trained: Path) -> None:
    result = subprocess.run(["make", "-s", "-f", str(PROJECT / "Makefile"), "finetune"],
                            cwd=trained, capture_output=True, text=True)
    assert result.returncode != 0
    assert "Error: a BERT model cannot be tuned to chat" in result.stderr
    assert "Suggestion: fill in masks with make generate" in result.stderr
    assert not (PROJECT / "training" / "finetune.py").exists()


def test_transformers_loads_the_export_and_fills_masks_like_make_generate(trained: Path) -> None:
    hf = trained / "export" / "hf"
    config = json.loads((hf / "config.json").read_text())
    assert check_hf_folder(hf) == config  # what `make deploy` checks before an upload
    model, _ = load_trained_model("auto", trained / "checkpoints", "cpu")
    assert config["architectures"] == [HF_CLASSES[model.config.variant][0]]
    assert "auto_map" not in config
    ours = Tokenizer.from_file(str(trained / "tokenizer" / "tokenizer.json"))
    assert_transformers_fills_masks_like_us(hf, model, ours)
    card = (hf / "README.md").read_text()
    assert "pipeline_tag: fill-mask" in card and "AutoModelForMaskedLM" in card
    assert "Validation masked-token accuracy" in card


def test_the_other_encoder_exports_too(trained: Path, tmp_path: Path) -> None:
    """The variant the project does not train, exported from random weights: transformers
    loads it as its own class and fills masks as we do."""
    model, _ = load_trained_model("auto", trained / "checkpoints", "cpu")
    other = "bert" if model.config.variant == "modernbert" else "modernbert"
    config = dataclasses.replace(model.config, variant=other,
                                 norm_eps=1e-12 if other == "bert" else 1e-5)
    ours = Tokenizer.from_file(str(trained / "tokenizer" / "tokenizer.json"))
    model = random_bert(config)
    write_hf_folder(model, ours, special_tokens_of(ours, SPECIAL), GenerationConfig(),
                    tmp_path / "hf")
    assert check_hf_folder(tmp_path / "hf")["architectures"] == [HF_CLASSES[other][0]]
    assert_transformers_fills_masks_like_us(tmp_path / "hf", model, ours)


def assert_transformers_fills_masks_like_us(hf: Path, model: torch.nn.Module,
                                           ours: Tokenizer) -> None:
    """The export in `hf` gives our model's logits, tokenizes as ours does, and its
    pipeline("fill-mask") answers what fill_masks (make generate) answers."""
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(hf).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    x = torch.randint(0, model.config.vocab_size, (2, model.config.max_length))
    with torch.no_grad():
        assert (model(x)[0] - theirs(x).logits).abs().max().item() <= 1e-5
    for text in ("Hello, world!", "The [MASK] sat on the mat.", "It's 3 o'clock."):
        cls, sep = ours.token_to_id("[CLS]"), ours.token_to_id("[SEP]")
        expected = [cls, *ours.encode(text, add_special_tokens=False).ids, sep]
        assert tokenizer(text)["input_ids"] == expected, text

    fill = transformers.pipeline("fill-mask", model=theirs, tokenizer=tokenizer)
    answers = fill(PROMPT, top_k=5)
    ids = {t: ours.token_to_id(t) for t in SPECIAL}
    mine = fill_masks(model, ours, PROMPT, ids["[MASK]"], ids["[CLS]"], ids["[SEP]"], top_k=5)
    assert [a["token"] for a in answers] == [c.id for c in mine.candidates[0]]
    assert [a["score"] for a in answers] == pytest.approx(
        [c.probability for c in mine.candidates[0]], abs=1e-5)


@pytest.mark.parametrize(("args", "says"), [
    (("--prompt", "No mask here."), "the prompt has no [MASK] token"),
    pytest.param(("--temperature", "0.5"),
                 "`generation.temperature` is a setting of gpt and t5 models",
                 marks=pytest.mark.slow),
    pytest.param(("--prompt", "[MASK] " * 80), "more than the model's context of 64",
                 marks=pytest.mark.slow),
])
def test_generate_refuses_what_bert_cannot_do(trained: Path, args: tuple, says: str) -> None:
    result = run_in(trained, "-m", "evaluation.generate", *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert "Suggestion: " in result.stderr


@pytest.mark.slow
def test_a_bpe_tokenizer_without_mask_is_refused_before_training(trained: Path,
                                                                 tmp_path: Path) -> None:
    """A byte-level BPE tokenizer.json from elsewhere that has [SEP] but no [MASK]: the data
    can be prepared, but masked-LM training cannot start, and says why."""
    from tokenizers import models, pre_tokenizers, trainers

    folder = tmp_path / "p"
    shutil.copytree(trained, folder)
    shutil.rmtree(folder / "checkpoints")
    config = (folder / "llm.config.js").read_text().replace('"type": "wordpiece"',
                                                           '"type": "bpe"')
    (folder / "llm.config.js").write_text(config)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["Once upon a time there was a cat. " * 50] * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["[SEP]", "[CLS]", "[PAD]", "[UNK]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(folder / "tokenizer" / "tokenizer.json"))
    (folder / "tokenizer" / "tokenizer.training.json").unlink()  # not written by make tokenizer
    assert run_in(folder, "-m", "data.prepare").returncode == 0
    result = run_in(folder, "-m", "training.train")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Error: the tokenizer has no [MASK] token, which BERT's masked-LM objective needs" \
        in result.stderr
    assert "Suggestion: train the tokenizer again with `make tokenizer`" in result.stderr
    assert not (folder / "checkpoints" / "best.pt").exists()


# ---- 5. Replicate ----


@pytest.mark.slow
def test_the_replicate_predictor_fills_masks_over_http(trained: Path, tmp_path: Path) -> None:
    pytest.importorskip("cog")
    pytest.importorskip("transformers")
    folder = tmp_path / "p"
    shutil.copytree(trained, folder)
    run_in(folder, str(PROJECT / "deploy.py"), "deploy", "--target", "replicate")
    target = folder / "deploy" / "replicate"
    assert "Runner" in (target / "predict.py").read_text()
    with serve_cog(target, free_port()) as url:
        answer = http_json(f"{url}/predictions", {"input": {"text": PROMPT, "top_k": 2}})
    assert answer["status"] == "succeeded", answer
    model, _ = load_trained_model("auto", trained / "checkpoints", "cpu")
    ours = Tokenizer.from_file(str(trained / "tokenizer" / "tokenizer.json"))
    ids = {t: ours.token_to_id(t) for t in SPECIAL}
    mine = fill_masks(model, ours, PROMPT, ids["[MASK]"], ids["[CLS]"], ids["[SEP]"], top_k=2)
    assert [c["score"] for c in answer["output"]] == pytest.approx(
        [c.probability for c in mine.candidates[0]], abs=1e-5)
