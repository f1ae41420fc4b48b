"""A trained checkpoint -> a Hugging Face folder that `transformers` loads with no custom code:
gpt as LlamaForCausalLM (Qwen2ForCausalLM with model.qkv_bias), bert as ModernBertForMaskedLM
(model.variant 'modernbert') or BertForMaskedLM ('bert'), t5 as T5ForConditionalGeneration.

    python deploy.py export                      # make export -> export/hf/
    python deploy.py export --dtype bf16         # half the size (fp32 is exact)

    from transformers import AutoModelForCausalLM, AutoTokenizer    # gpt
    model = AutoModelForCausalLM.from_pretrained("export/hf")      # no trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained("export/hf")
    # bert: AutoModelForMaskedLM, pipeline("fill-mask");
    # t5: AutoModelForSeq2SeqLM, pipeline("text2text-generation")

The folder holds config.json, model.safetensors, generation_config.json, tokenizer.json,
tokenizer_config.json and README.md (the model card, exporters/card.py). models/architectures/
already uses each Hugging Face class's math and tensor names, so the weights are renamed at most
(gpt: a `model.` prefix; bert: `bert.`, `cls.predictions.`; modernbert, t5: none) and the logits
are identical in fp32. gpt's names and config.json keys are models/hf_layout.py's, the table that
`make import` reads too. The tokenizer gets the template its Hugging Face class applies: bert adds
[CLS] ... [SEP] around a text, t5 ends it with </s>, as in training. Only the Python packages
every project has are needed here (torch, safetensors, tokenizers): transformers is for whoever
loads the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer, processors

from config import GenerationConfig, ModelConfig
from errors import DeploymentError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
         "tokenizer_config.json")


# ---- the tokens transformers needs to know by name ----


@dataclass(frozen=True)
class SpecialTokens:
    """Our end-of-text token is both Llama's bos and eos (every document ends with it, and
    generation from nothing starts with it); pad and unk are ours when the tokenizer has them."""

    eos: str
    eos_id: int
    pad: str
    pad_id: int
    unk: str | None
    cls_id: int | None = None  # bert's [CLS], when the tokenizer has one


def special_tokens_of(tokenizer: Tokenizer, names: list[str]) -> SpecialTokens:
    """Find tokenizer.special_tokens in the trained tokenizer (the first one ends documents)."""
    eos_id = tokenizer.token_to_id(names[0])
    if eos_id is None:
        raise DeploymentError(
            f"the tokenizer has no end-of-text token '{names[0]}' (tokenizer.special_tokens[0])",
            "export with the tokenizer the model was trained with (or run `make tokenizer` "
            "and retrain)",
        )
    pad = next((n for n in names if "pad" in n.lower() and tokenizer.token_to_id(n) is not None),
               names[0])
    unk = next((n for n in names if "unk" in n.lower() and tokenizer.token_to_id(n) is not None),
               None)
    return SpecialTokens(names[0], eos_id, pad, tokenizer.token_to_id(pad), unk,
                         tokenizer.token_to_id("[CLS]"))


# ---- config.json, generation_config.json, tokenizer_config.json ----


def bert_config(mc: ModelConfig, special: SpecialTokens, dtype: str = "fp32") -> dict[str, Any]:
    """config.json for transformers' BertForMaskedLM with exactly our model's shape."""
    return {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": mc.vocab_size,
        "hidden_size": mc.dim,
        "num_hidden_layers": mc.layers,
        "num_attention_heads": mc.heads,
        "intermediate_size": mc.mlp_dim,
        "hidden_act": "gelu",  # exact (erf) GELU, as in models/architectures/bert.py
        "hidden_dropout_prob": mc.dropout,
        "attention_probs_dropout_prob": mc.dropout,
        "max_position_embeddings": mc.max_length,
        "type_vocab_size": 2,
        "layer_norm_eps": mc.norm_eps,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,  # the MLM decoder is the word embedding matrix
        "pad_token_id": special.pad_id,
        "torch_dtype": DTYPE_NAMES[dtype],
    }


def modernbert_config(mc: ModelConfig, special: SpecialTokens, dtype: str = "fp32"
                      ) -> dict[str, Any]:
    """config.json for transformers' ModernBertForMaskedLM with exactly our model's shape: every
    layer attends to the whole sequence (ModernBERT's alternating local-attention layers are not
    ours) with rotary theta model.rope_theta."""
    rope = {"rope_type": "default", "rope_theta": mc.rope_theta}
    return {
        "architectures": ["ModernBertForMaskedLM"],
        "model_type": "modernbert",
        "vocab_size": mc.vocab_size,
        "hidden_size": mc.dim,
        "intermediate_size": mc.mlp_dim,
        "num_hidden_layers": mc.layers,
        "num_attention_heads": mc.heads,
        "hidden_activation": "gelu",  # exact (erf) GELU in GeGLU (models/architectures/bert.py)
        "max_position_embeddings": mc.max_length,
        "norm_eps": mc.norm_eps,
        "norm_bias": False,
        "attention_bias": False,
        "mlp_bias": False,
        "decoder_bias": True,
        "classifier_activation": "gelu",  # the MLM head's activation too
        "classifier_bias": False,
        "attention_dropout": mc.dropout,
        "embedding_dropout": mc.dropout,
        "mlp_dropout": mc.dropout,
        # Global attention in every layer: transformers 5 reads layer_types and rope_parameters,
        # 4.x global_attn_every_n_layers and global_rope_theta.
        "layer_types": ["full_attention"] * mc.layers,
        "global_attn_every_n_layers": 1,
        "rope_parameters": {"full_attention": rope, "sliding_attention": dict(rope)},
        "global_rope_theta": mc.rope_theta,
        "local_rope_theta": mc.rope_theta,
        "initializer_range": 0.02,
        "sparse_prediction": False,
        "tie_word_embeddings": True,  # the MLM decoder is the word embedding matrix
        "pad_token_id": special.pad_id,
        "sep_token_id": special.eos_id,
        "eos_token_id": special.eos_id,
        "cls_token_id": special.cls_id,
        "bos_token_id": special.cls_id,
        "torch_dtype": DTYPE_NAMES[dtype],
    }


def t5_config(mc: ModelConfig, special: SpecialTokens, dtype: str = "fp32") -> dict[str, Any]:
    """config.json for transformers' T5ForConditionalGeneration with exactly our model's shape:
    gated GELU (v1.1's feed-forward), tied embeddings and the output scaled by d_model^-0.5."""
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "vocab_size": mc.vocab_size,
        "d_model": mc.dim,
        "d_kv": mc.head_dim,
        "d_ff": mc.mlp_dim,
        "num_layers": mc.layers,
        "num_decoder_layers": mc.layers,
        "num_heads": mc.heads,
        "relative_attention_num_buckets": mc.relative_attention_buckets,
        "relative_attention_max_distance": mc.relative_attention_max_distance,
        "dropout_rate": mc.dropout,
        "layer_norm_epsilon": mc.norm_eps,
        "initializer_factor": 1.0,
        "feed_forward_proj": "gated-gelu",
        "is_encoder_decoder": True,
        "tie_word_embeddings": True,  # also tells transformers to scale by d_model^-0.5
        "use_cache": True,
        "pad_token_id": special.pad_id,
        "eos_token_id": special.eos_id,
        "decoder_start_token_id": special.pad_id,  # T5's decoder starts from the padding token
        "torch_dtype": DTYPE_NAMES[dtype],
    }


def hf_config(mc: ModelConfig, special: SpecialTokens, dtype: str = "fp32") -> dict[str, Any]:
    """config.json of the architecture's Hugging Face class."""
    if mc.architecture == "bert":
        modern = mc.variant == "modernbert"
        return (modernbert_config if modern else bert_config)(mc, special, dtype)
    if mc.architecture == "t5":
        return t5_config(mc, special, dtype)
    from models import hf_layout  # gpt projects only

    # gpt: our end-of-text token is Llama's bos and eos (see SpecialTokens)
    return hf_layout.hf_config(mc, special.eos_id, special.eos_id, special.pad_id,
                               DTYPE_NAMES[dtype])


def generation_config(special: SpecialTokens, g: GenerationConfig,
                      architecture: str = "gpt", stop_ids: tuple[int, ...] = ()
                      ) -> dict[str, Any]:
    """The project's `generation` settings, so `model.generate()` samples the way ours does
    (none for bert: it does not generate). A tuned model's answer also ends at its end-of-turn
    token (`stop_ids`: <|im_end|>, then end of text), as in make chat."""
    if architecture == "bert":
        return {"pad_token_id": special.pad_id}
    sampled = g.temperature > 0
    settings = {"do_sample": sampled, "temperature": g.temperature, "top_k": g.top_k,
                "top_p": g.top_p} if sampled else {"do_sample": False}
    eos = list(stop_ids) if stop_ids else special.eos_id
    if architecture == "t5":
        return {"decoder_start_token_id": special.pad_id, "eos_token_id": eos,
                "pad_token_id": special.pad_id, "max_new_tokens": g.max_new_tokens,
                "repetition_penalty": g.repetition_penalty, **settings}
    return {"bos_token_id": special.eos_id, "eos_token_id": eos,
            "pad_token_id": special.pad_id, "max_new_tokens": g.max_new_tokens,
            "repetition_penalty": g.repetition_penalty, **settings}


def tokenizer_config(special: SpecialTokens, tokenizer: Tokenizer, max_length: int,
                     architecture: str = "gpt", chat_template: str | None = None
                     ) -> dict[str, Any]:
    """tokenizer_config.json: the generic fast tokenizer over our tokenizer.json, and a tuned
    model's chat template (`tokenizer.apply_chat_template(messages, add_generation_prompt=True)`
    renders exactly the tokens make chat gives the model).

    "PreTrainedTokenizerFast", not transformers 5's own "TokenizersBackend": 4.x and llama.cpp's
    converter know only the former. No bos is added (we never train with one) and no spaces are
    "cleaned up" when decoding (that would turn our " ," into ","): the ids and the text are
    exactly ours.
    """
    added = {str(i): {"content": t.content, "special": True, "lstrip": False, "rstrip": False,
                      "normalized": False, "single_word": False}
             for i, t in sorted(tokenizer.get_added_tokens_decoder().items()) if t.special}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
              "bos_token": special.eos, "eos_token": special.eos, "pad_token": special.pad,
              "add_bos_token": False, "add_eos_token": False,
              "clean_up_tokenization_spaces": False, "added_tokens_decoder": added}
    if special.unk is not None:
        config["unk_token"] = special.unk
    if chat_template:
        config["chat_template"] = chat_template
    if architecture == "bert":  # no bos or eos: [CLS] and [SEP], and the [MASK] it fills in
        for key in ("bos_token", "eos_token", "add_bos_token", "add_eos_token"):
            config.pop(key)
        config.update(cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    if architecture == "t5":  # no bos; </s> ends every input (the tokenizer's template adds it)
        for key in ("bos_token", "add_bos_token", "add_eos_token"):
            config.pop(key)
        sentinels = [t.content for t in tokenizer.get_added_tokens_decoder().values()
                     if t.content.startswith("<extra_id_")]
        config["additional_special_tokens"] = sentinels
    return config


def hf_tokenizer(tokenizer: Tokenizer, architecture: str, special: SpecialTokens) -> Tokenizer:
    """The tokenizer as its Hugging Face class expects it: what tokenizer(text) gives is what
    the model was trained on. bert: [CLS] text [SEP] (a pair: [CLS] a [SEP] b [SEP], b of token
    type 1); t5: text </s>. gpt: unchanged (no beginning-of-text token)."""
    if architecture == "gpt":
        return tokenizer
    tok = Tokenizer.from_str(tokenizer.to_str())  # a copy: the project's tokenizer stays as is
    if architecture == "bert":
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    else:
        tok.post_processor = processors.TemplateProcessing(
            single=f"$A {special.eos}", pair=f"$A {special.eos} $B {special.eos}",
            special_tokens=[(special.eos, special.eos_id)])
    return tok


# ---- the weights ----


def hf_state_dict(model: torch.nn.Module, dtype: str = "fp32") -> dict[str, torch.Tensor]:
    """Our weights under the Hugging Face class's names (tied copies left out)."""
    architecture = model.config.architecture
    if architecture == "gpt":  # the names of models/hf_layout.py (the import reads them too)
        from models import hf_layout  # gpt projects only

        return hf_layout.hf_tensors(model, DTYPES[dtype])
    if architecture == "bert" and model.config.variant == "modernbert":
        return modernbert_state_dict(model, dtype)
    state = {}
    for name, tensor in model.state_dict().items():
        if architecture == "bert":
            if name == "head.decoder.weight":  # the word embeddings (tied)
                continue
            name = f"cls.predictions.{name[5:]}" if name.startswith("head.") else f"bert.{name}"
        state[name] = tensor.detach().to("cpu", DTYPES[dtype]).contiguous().clone()
    if architecture == "bert":  # transformers ties the decoder's bias to this one
        state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"].clone()
    return state


def modernbert_state_dict(model: torch.nn.Module, dtype: str = "fp32"
                          ) -> dict[str, torch.Tensor]:
    """Our ModernBERT's state dict: already ModernBertForMaskedLM's names; the decoder's weight
    (the tied word embedding) left out, transformers ties it back."""
    return {name: tensor.detach().to("cpu", DTYPES[dtype]).contiguous().clone()
            for name, tensor in model.state_dict().items() if name != "decoder.weight"}


# ---- the folder ----


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_hf_folder(model: torch.nn.Module, tokenizer: Tokenizer, special: SpecialTokens,
                    generation: GenerationConfig, folder: Path, dtype: str = "fp32",
                    card: str = "", chat_template: str | None = None,
                    stop_ids: tuple[int, ...] = ()) -> list[Path]:
    """Write the whole folder (card included) and return its files. A tuned model's
    chat_template goes into tokenizer_config.json and, as transformers 5 writes it, into
    chat_template.jinja beside it (llama.cpp's converter reads either).

    It is written beside the target and renamed into place, so an interrupted export (or a Hub
    upload running at the same moment) never sees half a folder; the previous export is
    replaced only once the new one is complete.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        architecture = model.config.architecture
        write_json(tmp / "config.json", hf_config(model.config, special, dtype))
        write_json(tmp / "generation_config.json",
                   generation_config(special, generation, architecture, stop_ids))
        save_file(hf_state_dict(model, dtype), str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})  # transformers expects the "pt" marker
        (tmp / "model.safetensors").chmod(0o644)  # safetensors writes it owner-only (0600)
        hf_tokenizer(tokenizer, architecture, special).save(str(tmp / "tokenizer.json"))
        write_json(tmp / "tokenizer_config.json",
                   tokenizer_config(special, tokenizer, model.config.max_length, architecture,
                                    chat_template))
        if chat_template:
            (tmp / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
        if card:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        _replace_folder(tmp, folder)
    except OSError as error:
        raise DeploymentError(f"could not write the export to {folder}/: "
                              f"{error.strerror or error}",
                              "free some disk space, or set deployment.export_dir to a "
                              "writable folder") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(p for p in folder.iterdir() if p.is_file())


def _replace_folder(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    new.rename(target)
    with contextlib.suppress(OSError):
        shutil.rmtree(old)


# ---- reading an export back (before an upload) ----


def check_hf_folder(folder: Path) -> dict[str, Any]:
    """config.json of an export that loads: every file there, the tokenizer readable, and the
    weights' names and shapes those of the config. DeploymentError says what is wrong."""
    folder = Path(folder)
    redo = f"export it again: `make export` (it rewrites {folder}/)"
    if not (folder / "config.json").is_file():
        raise DeploymentError(f"no Hugging Face export in {folder}/", "export the model first: "
                              "`make export`")
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise DeploymentError(f"the export in {folder}/ is incomplete: {', '.join(missing)} "
                              "missing", redo)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        Tokenizer.from_file(str(folder / "tokenizer.json"))
        with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
            shapes = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
        embedding, layer_prefix, per_layer = EXPECTED_TENSORS[config["architectures"][0]]
        dim = config.get("hidden_size", config.get("d_model"))
        layers = config.get("num_hidden_layers", config.get("num_layers"))
        expected = (config["vocab_size"], dim)
    except Exception as error:  # a damaged file: each library says why in its own way
        raise DeploymentError(f"the export in {folder}/ does not load: "
                              f"{str(error).splitlines()[0][:160]}", redo) from None
    found = {n for n in shapes if n.startswith(layer_prefix)}
    if shapes.get(embedding) != expected or \
            len(found) != per_layer * layers + EXTRA_TENSORS.get(config["architectures"][0], 0):
        raise DeploymentError(f"the export in {folder}/ does not load: model.safetensors does "
                              "not match config.json", redo)
    return config


# Layer tensors besides per_layer x layers: t5's relative position bias (in its first block);
# ModernBERT's first layer has no attention norm.
EXTRA_TENSORS = {"T5ForConditionalGeneration": 1, "ModernBertForMaskedLM": -1}
# config.json's class -> (the embedding matrix, the prefix of the layers' tensors, how many
# tensors each layer has): enough to tell an export from a damaged or mismatched one.
EXPECTED_TENSORS = {
    "LlamaForCausalLM": ("model.embed_tokens.weight", "model.layers.", 9),
    "Qwen2ForCausalLM": ("model.embed_tokens.weight", "model.layers.", 12),  # + q/k/v biases
    "BertForMaskedLM": ("bert.embeddings.word_embeddings.weight", "bert.encoder.layer.", 16),
    "ModernBertForMaskedLM": ("model.embeddings.tok_embeddings.weight", "model.layers.", 6),
    "T5ForConditionalGeneration": ("shared.weight", "encoder.block.", 9),
}
