"""Our GPT <-> Hugging Face's Llama family: the one table of tensor names and config.json keys.

    hf_names(model)                  our tensor name -> its Hugging Face name, for every tensor
                                     a Hugging Face file holds
    hf_tensors(model)                our weights under those names (make export, GGUF)
    hf_config(model.config, ...)     config.json for them
    model_config_from_hf(config)     a published checkpoint's config.json -> our ModelConfig
                                     (make import), or a DataError naming what we cannot run

Export (exporters/hf.py, exporters/gguf.py) and import (importers/) both read this file, so an
import followed by an export gives back the same tensors by construction (tests/test_import.py
checks it). The rules, the same as litgpt's convert_hf_checkpoint:
- names: ours are Hugging Face's without the `model.` prefix; `lm_head.weight` is the same in both.
- no permutation: our RoPE and Hugging Face's both use the rotate-half layout (only Meta's own
  consolidated.*.pth files are interleaved; checkpoints on the Hub are not).
- tied embeddings: the file has no `lm_head.weight` and config.json says tie_word_embeddings;
  transformers (and we) use the embedding matrix for it.
- grouped-query attention: k_proj and v_proj are (kv_heads * head_dim, dim).
- Qwen2 is Llama with biases on q/k/v (our model.qkv_bias); Mistral is Llama with a sliding
  window, which changes nothing while the context is no longer than the window.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from config import ModelConfig
from errors import ConfigurationError, DataError

HF_PREFIX = "model."  # Hugging Face's name for the decoder inside *ForCausalLM
UNTIED_HEAD = "lm_head.weight"  # the output matrix: in the file only when it is not tied
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)  # RoPE tables some older files carry (recomputed)
DEFAULT_ROPE_THETA = 10000.0  # transformers' default_theta


# ---- the tensors ----


def hf_name(name: str) -> str:
    """Our tensor name -> Hugging Face's: `layers.0.mlp.up_proj.weight` ->
    `model.layers.0.mlp.up_proj.weight`."""
    return name if name == UNTIED_HEAD else HF_PREFIX + name


def hf_names(model: torch.nn.Module) -> dict[str, str]:
    """Our name -> Hugging Face's, for every tensor that a Hugging Face file of `model` holds
    (a tied lm_head is left out). Works on a model built on the meta device."""
    tied = model.config.tie_embeddings
    return {name: hf_name(name) for name in model.state_dict()
            if not (name == UNTIED_HEAD and tied)}


def hf_tensors(model: torch.nn.Module, dtype: torch.dtype = torch.float32
               ) -> dict[str, torch.Tensor]:
    """Our weights under Hugging Face's names, as contiguous CPU copies in `dtype` (safetensors
    refuses tensors that share memory, so a tied lm_head is not among them)."""
    state = model.state_dict()
    return {hf: state[ours].detach().to("cpu", dtype).contiguous().clone()
            for ours, hf in hf_names(model).items()}


def expected_shapes(mc: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Hugging Face name -> shape, of every tensor a checkpoint of this shape must hold. Read
    from the model itself, built on the meta device (no memory)."""
    from models.build import build_model  # the model's code decides the shapes

    with torch.device("meta"):
        model = build_model(mc)
    state = model.state_dict()
    return {hf: tuple(state[ours].shape) for ours, hf in hf_names(model).items()}


# ---- config.json ----


@dataclasses.dataclass(frozen=True)
class Family:
    """A Hugging Face class that is our GPT's math, and the defaults its config class uses for
    keys a config.json may leave out (read from transformers' configuration_*.py)."""

    model_type: str
    qkv_bias: bool  # its q/k/v projections have biases
    max_position_embeddings: int
    sliding_window: int | None  # its default window (None: attends to the whole context)


FAMILIES = {
    "LlamaForCausalLM": Family("llama", False, 2048, None),  # also SmolLM2, TinyLlama
    "MistralForCausalLM": Family("mistral", False, 4096 * 32, 4096),
    "Qwen2ForCausalLM": Family("qwen2", True, 32768, None),
}
ROPE_TYPES = ("default", "llama3")


def hf_class(mc: ModelConfig) -> str:
    """The Hugging Face class a model of this config is: Qwen2 when it has q/k/v biases
    (Llama's attention_bias would put one on o_proj too), else Llama."""
    return "Qwen2ForCausalLM" if mc.qkv_bias else "LlamaForCausalLM"


def hf_config(mc: ModelConfig, bos_id: int, eos_id: int, pad_id: int,
              torch_dtype: str = "float32") -> dict[str, Any]:
    """config.json for transformers' LlamaForCausalLM (Qwen2ForCausalLM with qkv_bias) with
    exactly our model's shape."""
    architecture = hf_class(mc)
    rope = {"rope_type": "default", "rope_theta": mc.rope_theta}
    if mc.rope_scaling == "llama3":
        rope.update(rope_type="llama3", factor=mc.rope_scaling_factor,
                    low_freq_factor=mc.rope_low_freq_factor,
                    high_freq_factor=mc.rope_high_freq_factor,
                    original_max_position_embeddings=mc.rope_original_max_length)
    config = {
        "architectures": [architecture],
        "model_type": FAMILIES[architecture].model_type,
        "vocab_size": mc.vocab_size,
        "hidden_size": mc.dim,
        "intermediate_size": mc.mlp_dim,
        "num_hidden_layers": mc.layers,
        "num_attention_heads": mc.heads,
        "num_key_value_heads": mc.kv_heads,
        "head_dim": mc.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": mc.max_length,
        "rms_norm_eps": mc.norm_eps,
        # Both places: transformers 5 reads rope_parameters, 4.x reads only the top-level keys
        # (and would silently use 10000 and no scaling without them).
        "rope_theta": mc.rope_theta,
        "rope_parameters": rope,
        # Without the flag transformers 5 gives lm_head its own random weights.
        "tie_word_embeddings": mc.tie_embeddings,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "torch_dtype": torch_dtype,
    }
    if mc.rope_scaling != "none":
        config["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    if architecture == "LlamaForCausalLM":
        config.update(attention_bias=False, mlp_bias=False)
    else:  # Qwen2: its biases are on q/k/v by definition; no sliding window
        config.update(use_sliding_window=False, sliding_window=None)
    return config


def _refuse(problem: str, suggestion: str = "") -> DataError:
    return DataError(f"config.json: {problem}", suggestion or
                     "start from a checkpoint of the Llama family (" + ", ".join(FAMILIES) +
                     ") without that option, e.g. HuggingFaceTB/SmolLM2-135M")


def rope_settings(config: dict[str, Any]) -> dict[str, Any]:
    """Our rope_* keys from config.json, read the way transformers 5 reads them: rope_scaling
    (4.x files) or rope_parameters (5.x), rope_theta inside it or at the top level."""
    params = config.get("rope_scaling") or config.get("rope_parameters") or {}
    if not isinstance(params, dict) or any(isinstance(v, dict) for v in params.values()):
        raise _refuse("rope_parameters differ per layer type, which our GPT cannot do")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        raise _refuse(f"rope_type '{rope_type}' is not supported (supported: "
                      f"{', '.join(ROPE_TYPES)})")
    partial = params.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0))
    if partial not in (None, 1, 1.0):
        raise _refuse(f"partial_rotary_factor {partial}: RoPE on part of each head is not "
                      "supported")
    settings = {"rope_theta": float(params.get("rope_theta", config.get("rope_theta") or
                                               DEFAULT_ROPE_THETA))}
    if rope_type == "llama3":
        original = config.get("original_max_position_embeddings") or params.get(
            "original_max_position_embeddings") or config.get("max_position_embeddings")
        try:
            settings.update(rope_scaling="llama3", rope_scaling_factor=float(params["factor"]),
                            rope_low_freq_factor=float(params["low_freq_factor"]),
                            rope_high_freq_factor=float(params["high_freq_factor"]),
                            rope_original_max_length=int(original))
        except (KeyError, TypeError, ValueError):
            raise _refuse("rope_type 'llama3' needs factor, low_freq_factor, high_freq_factor "
                          "and original_max_position_embeddings") from None
    return settings


def hf_family(config: dict[str, Any]) -> tuple[str, Family]:
    """config.json's class and its Family, or DataError listing the supported ones."""
    names = config.get("architectures") or []
    architecture = names[0] if isinstance(names, list) and len(names) == 1 else None
    if architecture not in FAMILIES:
        raise _refuse(f"architectures is {names or 'missing'}; supported: "
                      f"{', '.join(FAMILIES)}")
    return architecture, FAMILIES[architecture]


def hf_context(config: dict[str, Any]) -> int:
    """The context a checkpoint was trained for (max_position_embeddings, or its class's
    default)."""
    _, family = hf_family(config)
    try:
        return int(config.get("max_position_embeddings") or family.max_position_embeddings)
    except (TypeError, ValueError):
        raise _refuse("max_position_embeddings is not a whole number") from None


def model_config_from_hf(config: dict[str, Any], max_length: int | None = None) -> ModelConfig:
    """Our ModelConfig for a Hugging Face config.json, or DataError naming the first thing our
    GPT does not compute the same way. max_length: the context to use (default: the
    checkpoint's own max_position_embeddings)."""
    architecture, family = hf_family(config)
    if config.get("model_type", family.model_type) != family.model_type:
        raise _refuse(f"model_type '{config.get('model_type')}' is not {architecture}'s "
                      f"'{family.model_type}'")
    if config.get("quantization_config"):
        method = (config["quantization_config"] or {}).get("quant_method", "quantized")
        raise _refuse(f"the weights are quantized ({method}), and only float weights can be "
                      "trained", "use the unquantized (bf16 or fp32) version of the model")
    act = config.get("hidden_act", "silu")
    if act != "silu":
        raise _refuse(f"hidden_act '{act}' is not supported (our SwiGLU uses silu)")
    for key, where in (("attention_bias", "q/k/v and o_proj"), ("mlp_bias", "the MLP")):
        if config.get(key) and not (key == "attention_bias" and family.qkv_bias):
            raise _refuse(f"{key}: true (biases on {where}) is not supported")
    try:
        shape = {key: int(config[key]) for key in ("vocab_size", "hidden_size",
                                                    "intermediate_size", "num_hidden_layers",
                                                    "num_attention_heads")}
    except (KeyError, TypeError, ValueError) as error:
        raise _refuse(f"{error} is missing or not a whole number",
                      "pass the folder of a complete Hugging Face checkpoint") from None
    heads = shape["num_attention_heads"]
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = config.get("head_dim") or shape["hidden_size"] // max(1, heads)
    if head_dim * heads != shape["hidden_size"]:
        raise _refuse(f"head_dim {head_dim} x {heads} heads is not hidden_size "
                      f"{shape['hidden_size']} (our GPT's head size is dim / heads)")
    context = hf_context(config)
    if max_length is not None and max_length > context:
        raise DataError(f"--max-length {max_length} is longer than the checkpoint's context "
                        f"(max_position_embeddings {context})",
                        f"use --max-length {context} or less")
    length = max_length or context
    window = config.get("sliding_window", family.sliding_window)
    if architecture == "Qwen2ForCausalLM" and not config.get("use_sliding_window"):
        window = None
    if window is not None and window < length:
        raise _refuse(f"sliding_window {window} is shorter than the context ({length} tokens): "
                      "its attention sees only the last tokens, which our GPT does not do",
                      f"import with --max-length {window} (within the window it is the same "
                      "math)")
    try:
        return ModelConfig(
            architecture="gpt", preset="custom", layers=shape["num_hidden_layers"],
            heads=heads, kv_heads=kv_heads, dim=shape["hidden_size"],
            mlp_dim=shape["intermediate_size"], max_length=length, dropout=0.0,
            norm_eps=float(config.get("rms_norm_eps") or 1e-6),  # the classes' default
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=family.qkv_bias, vocab_size=shape["vocab_size"], **rope_settings(config))
    except ConfigurationError as error:  # a size our GPT refuses, in config.json's terms
        raise _refuse(error.message.replace("model.", "our "), error.suggestion) from None
