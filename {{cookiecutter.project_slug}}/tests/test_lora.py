"""LoRA (models/lora.py): low-rank adapters on the attention and MLP projections, the rest frozen.

    python -m pytest tests/test_lora.py        # a few seconds

- before any training the wrapped model is exactly the base model (B starts at zero);
- training with the project's own optimizer changes the adapters only: every frozen weight
  stays bit for bit, and the loss falls;
- merging gives back plain nn.Linear layers with the original state-dict keys, and the same
  function (within 1e-5);
- a checkpoint holding adapters loads merged (eval, generate, chat, export see a plain model),
  and its Hugging Face export loads in transformers with the same logits;
- `make summary`: a SmolLM2-135M-shaped model with LoRA has ~2% trainable parameters and
  AdamW state for those only.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn as nn

from config import ModelConfig, TrainingConfig, load_config
from conftest import make_cycle_sequence
from models.architectures.gpt import GPT
from models.lora import TARGETS, LoRALinear, apply_lora, lora_settings, merge_lora
from models.memory import training_memory
from models.presets import count_lora_parameters, count_parameters
from training.optimizer import build_optimizer

RANK = 4


def train(model: nn.Module, steps: int = 30) -> list[float]:
    """A few steps of next-token prediction on a 50-token cycle, with the optimizer `make
    train` builds (AdamW, weight decay on matrices); the losses."""
    seq = make_cycle_sequence()
    optimizer = build_optimizer(model, TrainingConfig(learning_rate=1e-2, weight_decay=0.1))
    g = torch.Generator().manual_seed(1)
    losses = []
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(seq) - 33, (8,), generator=g).tolist()
        batch = torch.stack([seq[s:s + 33] for s in starts])  # (8, 33)
        _, loss = model(batch[:, :-1], targets=batch[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture
def base(tiny_model_config: ModelConfig) -> GPT:
    return GPT(tiny_model_config).eval()


def test_step_0_is_the_base_model(base: GPT) -> None:
    x = torch.randint(0, 256, (2, 32))
    with torch.no_grad():
        before = base(x)[0]
        apply_lora(base, RANK)
        after = base(x)[0]
    assert torch.equal(before, after)
    trainable = {name for name, p in base.named_parameters() if p.requires_grad}
    wrapped = [m for m in base.modules() if isinstance(m, LoRALinear)]
    assert len(wrapped) == len(TARGETS) * base.config.layers
    assert trainable == {name for name, _ in base.named_parameters()
                         if name.endswith((".lora_A", ".lora_B"))}
    assert sum(base.state_dict()[n].numel() for n in trainable) == sum(
        RANK * (m.in_features + m.out_features) for m in wrapped)
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        apply_lora(base, RANK)


def test_training_changes_only_the_adapters(base: GPT) -> None:
    apply_lora(base, RANK, alpha=2 * RANK)
    frozen = {name: p.detach().clone() for name, p in base.named_parameters()
              if not p.requires_grad}
    adapters_b = {name: p.detach().clone() for name, p in base.named_parameters()
                  if name.endswith("lora_B")}
    losses = train(base)
    assert losses[-1] < losses[0] - 0.3, losses
    for name, p in base.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), f"frozen {name} changed"
    for name, before in adapters_b.items():
        assert not torch.equal(dict(base.named_parameters())[name], before), name


def test_merged_is_the_same_function_with_the_original_keys(base: GPT) -> None:
    keys = list(base.state_dict())
    apply_lora(base, RANK)
    train(base, steps=10)
    base.eval()
    x = torch.randint(0, 256, (2, 32))
    with torch.no_grad():
        unmerged = base(x)[0]
        merge_lora(base)
        merged = base(x)[0]
    assert (merged - unmerged).abs().max() <= 1e-5
    assert list(base.state_dict()) == keys
    assert not any(isinstance(m, LoRALinear) for m in base.modules())
    merged_layers = [m for name, m in base.named_modules() if name.endswith(TARGETS)]
    assert len(merged_layers) == len(TARGETS) * base.config.layers
    assert all(type(m) is nn.Linear for m in merged_layers)
    assert lora_settings(base) is None


def test_a_checkpoint_with_adapters_loads_merged_and_exports(base: GPT, tmp_path, tiny_tokenizer,
                                                             make_tiny_config) -> None:
    """What finetuning saves (the adapters in the state dict, state["lora"] saying so) is what
    load_trained_model turns back into a plain model, and make export writes one that
    transformers loads."""
    from exporters.hf import special_tokens_of, write_hf_folder
    from runtime.checkpoints import load_trained_model, save_checkpoint

    apply_lora(base, RANK)
    train(base, steps=10)
    base.eval()
    cfg = make_tiny_config()
    state = {"model": base.state_dict(), "lora": lora_settings(base),
             "model_config": dataclasses.asdict(base.config), "config": cfg.to_dict(),
             "tokenizer_hash": None, "step": 10, "tokens_seen": 0, "metrics": {}}
    assert any(key.endswith("lora_A") for key in state["model"])
    save_checkpoint(tmp_path / "checkpoints" / "step_000010.pt", state, {"step": 10})
    model, _ = load_trained_model("latest", tmp_path / "checkpoints")
    x = torch.randint(0, 256, (2, 32))
    with torch.no_grad():
        expected = base(x)[0]
        assert (model(x)[0] - expected).abs().max() <= 1e-5
    assert not any(isinstance(m, LoRALinear) for m in model.modules())

    transformers = pytest.importorskip("transformers")
    special = special_tokens_of(tiny_tokenizer, cfg.tokenizer.special_tokens)
    write_hf_folder(model, tiny_tokenizer, special, cfg.generation, tmp_path / "hf")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        assert (theirs(x).logits - expected).abs().max() <= 1e-4


SMOLLM2_135M = ModelConfig(layers=30, heads=9, kv_heads=3, dim=576, mlp_dim=1536,
                           max_length=2048, rope_theta=100000.0, vocab_size=49152)


def test_lora_trains_2_percent_of_a_135m_model_and_shrinks_its_optimizer_state() -> None:
    total = count_parameters(SMOLLM2_135M)
    assert total == 134_515_008  # transformers' count for SmolLM2-135M's config
    with_adapters, trainable = count_lora_parameters(SMOLLM2_135M, 8)
    d, kv, m = 576, 3 * 64, 1536  # q/o: d x d; k/v: d -> kv; gate/up: d -> m; down: m -> d
    per_layer = 8 * (2 * (d + d) + 2 * (d + kv) + 2 * (d + m) + (m + d))
    assert trainable == 30 * per_layer and with_adapters == total + trainable
    assert trainable / with_adapters < 0.025
    full = training_memory(SMOLLM2_135M, total, 4, "bf16", "none")
    lora = training_memory(SMOLLM2_135M, with_adapters, 4, "bf16", "none", trainable=trainable)
    assert lora.optimizer == 8 * trainable and lora.gradients == 4 * trainable
    assert lora.weights == 4 * with_adapters
    # The same activations (backward still runs through every block), and bf16 copies of every
    # weight, the adapters' too.
    assert lora.activations - full.activations == 2 * trainable
    assert lora.state < full.state / 3


def test_make_summary_shows_the_project_with_and_without_lora(tmp_path, monkeypatch) -> None:
    from conftest import write_project_config
    from models.presets import SUMMARY_LORA_RANK, summary

    shape = {key: getattr(SMOLLM2_135M, key) for key in (
        "layers", "heads", "kv_heads", "dim", "mlp_dim", "max_length", "rope_theta")}
    write_project_config(tmp_path, {"model": {**shape, "preset": "custom"},
                                    "tokenizer": {"vocab_size": 49152},
                                    "data": {"stride": 2048}, "training": {"batch_size": 4}})
    monkeypatch.chdir(tmp_path)
    assert load_config().model.layers == 30
    text = summary()
    assert "this project 134.52M      30    576      9    3   1536     2048   49152" in text
    _, trainable = count_lora_parameters(SMOLLM2_135M, SUMMARY_LORA_RANK)
    assert f"{trainable / 1e6:.2f}M trainable" in text
    rows = {line.split()[0] + line.split()[1]: line for line in text.splitlines()
            if line.startswith(("this project", "+ LoRA"))}
    full_state = float(rows["thisproject"].split()[2])
    lora_state = float(rows["+LoRA"].split()[3])
    assert lora_state < full_state / 3, rows
