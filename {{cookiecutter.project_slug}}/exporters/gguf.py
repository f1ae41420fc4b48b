"""A trained checkpoint -> one GGUF file for llama.cpp, Ollama and LM Studio, and a Modelfile.

    python deploy.py export --format gguf                 # export/gguf/<project>-f16.gguf
    python deploy.py export --format gguf --gguf-type q8_0
    llama-cli -m export/gguf/my-llm-f16.gguf -p "Once upon a time" --temp 0
    cd export/gguf && ollama create my-llm -f Modelfile && ollama run my-llm

The file is written with the `gguf` package's GGUFWriter (llama.cpp's own converter refuses a
freshly trained vocabulary: it recognises pre-tokenizers by hashing their output). It is a plain
"llama" model: our tensors under llama.cpp's names, with one change. llama.cpp rotates query
and key elements in adjacent pairs (0,1), (2,3), ...; our RoPE (and Hugging Face's) pairs
element i with i + head_dim/2. So the rows of each head's q and k weights are reordered
(permute_for_llama_cpp), which gives the same attention scores. The tokenizer is byte-level BPE:
llama.cpp's "gpt2" model with the "gpt-2" pre-tokenizer is exactly our ByteLevel one.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from config import GenerationConfig
from errors import DeploymentError
from models.hf_layout import hf_tensors

from .hf import SpecialTokens

try:
    import gguf
except ImportError:  # an optional dependency: say how to get it when it is needed
    gguf = None

FILE_TYPES = {"f32": ("F32", "ALL_F32"), "f16": ("F16", "MOSTLY_F16"),
              "q8_0": ("Q8_0", "MOSTLY_Q8_0")}


def require_gguf() -> None:
    if gguf is None:
        raise DeploymentError("the `gguf` package is not installed (it writes GGUF files)",
                              "install it: `.venv/bin/pip install gguf` (or `make setup`)")


def require_plain_llama(config: object) -> None:
    """What this writer's "llama" file holds: no q/k/v biases (Qwen2's) and plain RoPE (Llama 3's
    scaled frequencies need llama.cpp's rope_freqs tensor, which this writer does not make)."""
    option = ("model.qkv_bias (a Qwen2 model)" if config.qkv_bias else
              f"model.rope_scaling '{config.rope_scaling}'" if config.rope_scaling != "none"
              else None)
    if option is not None:
        raise DeploymentError(
            f"GGUF export writes plain Llama models, and this one has {option}",
            "export for transformers (`make export`), then convert export/hf/ with llama.cpp's "
            "own convert_hf_to_gguf.py, which knows these models")


def require_byte_level_bpe(tokenizer: Tokenizer) -> None:
    """llama.cpp's "gpt2" tokenizer is byte-level BPE; wordpiece and unigram do not map onto it
    (their normalisers and pre-tokenizers have no GGUF equivalent here)."""
    data = json.loads(tokenizer.to_str())
    pre = data.get("pre_tokenizer") or {}
    if data["model"]["type"] != "BPE" or pre.get("type") != "ByteLevel" or \
            pre.get("add_prefix_space") or data.get("normalizer"):
        raise DeploymentError(
            f"GGUF export needs a byte-level BPE tokenizer; this model's is "
            f"{data['model']['type']} with a {pre.get('type', 'custom')} pre-tokenizer",
            "export for transformers instead (`make export`), or train with tokenizer.type: "
            "'bpe' (then `make data` and `make train ARGS=--fresh`)")


# ---- the q/k permutation ----


def permute_for_llama_cpp(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """q_proj/k_proj rows (heads * D, C), rotate-half order -> llama.cpp's adjacent pairs.

    Within each head, rows [0 .. D/2) and [D/2 .. D) become interleaved: 0, D/2, 1, D/2+1, ...
    """
    rows, dim = weight.shape
    head_dim = rows // heads
    w = weight.reshape(heads, 2, head_dim // 2, dim)  # (H, 2 halves, D/2, C)
    return w.transpose(1, 2).reshape(rows, dim)  # (H, D/2, 2, C) -> (H * D, C)


def unpermute_from_llama_cpp(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """The inverse of permute_for_llama_cpp (for reading a GGUF file back)."""
    rows, dim = weight.shape
    w = weight.reshape(heads, rows // heads // 2, 2, dim)  # (H, D/2, 2, C)
    return w.transpose(1, 2).reshape(rows, dim)  # (H, 2, D/2, C) -> (H * D, C)


# ---- tensors ----


def gguf_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """llama.cpp's tensor names -> fp32 tensors (q and k permuted; a tied output matrix is left
    out: llama.cpp then uses token_embd for it)."""
    c = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, c.layers)
    tensors = {}
    for hf_name, tensor in hf_tensors(model, torch.float32).items():
        if hf_name.endswith("self_attn.q_proj.weight"):
            tensor = permute_for_llama_cpp(tensor, c.heads)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            tensor = permute_for_llama_cpp(tensor, c.kv_heads)
        name = names.get_name(hf_name.removesuffix(".weight"), try_suffixes=())
        if name is None:
            raise DeploymentError(f"no llama.cpp name for the tensor {hf_name}",
                                  "GGUF export knows the model of models/architectures/gpt.py "
                                  "only; export for transformers instead (`make export`)")
        tensors[name + ".weight"] = tensor
    return tensors


def encode_tensor(tensor: torch.Tensor, file_type: str) -> tuple[np.ndarray, object]:
    """(data, ggml type). Norm weights (1-D) stay f32, as llama.cpp's converter does; q8_0
    needs rows that are a multiple of its 32-value blocks, else the tensor is f16."""
    qtype = getattr(gguf.GGMLQuantizationType, FILE_TYPES[file_type][0])
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if tensor.dim() == 1 or tensor.shape[-1] % block:
        qtype = gguf.GGMLQuantizationType.F32 if tensor.dim() == 1 else \
            gguf.GGMLQuantizationType.F16
    return gguf.quants.quantize(tensor.numpy(), qtype), qtype


# ---- the file ----


def add_tokenizer(writer: object, tokenizer: Tokenizer, special: SpecialTokens,
                  vocab_size: int = 0) -> None:
    """Byte-level BPE as llama.cpp's "gpt2" tokenizer: tokens by id, types, merges."""
    data = json.loads(tokenizer.to_str())
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    # One token per embedding row: a published checkpoint may have more rows than its tokenizer
    # has tokens (padding for fast matrix sizes); llama.cpp needs a name for each, as its own
    # converter gives them.
    tokens = [f"[PAD{i}]" for i in range(max(vocab_size, tokenizer.get_vocab_size()))]
    for token, index in vocab.items():
        tokens[index] = token
    specials = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    real = set(vocab.values())
    types = [gguf.TokenType.CONTROL if i in specials else gguf.TokenType.NORMAL if i in real
             else gguf.TokenType.UNUSED for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # = ByteLevel(add_prefix_space=False, use_regex=True)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(special.eos_id)
    writer.add_eos_token_id(special.eos_id)
    writer.add_pad_token_id(special.pad_id)
    writer.add_add_bos_token(False)  # we never train with a beginning-of-text token
    writer.add_add_eos_token(False)


def write_gguf(model: torch.nn.Module, tokenizer: Tokenizer, special: SpecialTokens,
               folder: Path, name: str, file_type: str = "f16", chat_template: str | None = None,
               end_of_turn: int | None = None) -> Path:
    """Write folder/<name>-<file_type>.gguf (through a temporary file) and return its path. A
    tuned model's chat template goes in as tokenizer.chat_template (llama.cpp's chat mode and
    Ollama read it), its end-of-turn token as the end-of-turn id."""
    require_gguf()
    c = model.config
    require_plain_llama(c)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"
    path = Path(folder) / f"{name}-{file_type}.gguf"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = gguf.GGUFWriter(str(tmp), "llama")
        writer.add_name(name)
        writer.add_context_length(c.max_length)
        writer.add_embedding_length(c.dim)
        writer.add_block_count(c.layers)
        writer.add_feed_forward_length(c.mlp_dim)
        writer.add_head_count(c.heads)
        writer.add_head_count_kv(c.kv_heads)
        writer.add_rope_freq_base(c.rope_theta)
        writer.add_rope_dimension_count(c.head_dim)
        writer.add_layer_norm_rms_eps(c.norm_eps)
        writer.add_vocab_size(c.vocab_size)
        writer.add_file_type(getattr(gguf.LlamaFileType, FILE_TYPES[file_type][1]))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_tokenizer(writer, tokenizer, special, c.vocab_size)
        if chat_template:
            writer.add_chat_template(chat_template)
        if end_of_turn is not None:
            writer.add_eot_token_id(end_of_turn)
        for tensor_name, tensor in gguf_tensors(model).items():
            data, qtype = encode_tensor(tensor, file_type)
            writer.add_tensor(tensor_name, data, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(path)  # a reader never sees half a file
    except OSError as error:
        raise DeploymentError(f"could not write {path}: {error.strerror or error}",
                              "free some disk space, or set deployment.export_dir to a "
                              "writable folder") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


# Ollama's own ChatML template (its template/chatml.gotmpl), in Go's template language: Ollama
# does not run Jinja. It renders what tokenizer/chat_template.jinja renders, turn by turn.
CHATML_GO = ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
             "{{ end }}<|im_start|>assistant\n")


def write_modelfile(folder: Path, gguf_name: str, g: GenerationConfig, stops: tuple[str, ...],
                    context: int, chat_template: str | None = None) -> Path:
    """An Ollama Modelfile: the GGUF file, the chat format (a base model: plain continuation;
    a tuned one: ChatML turns, or no TEMPLATE for another template, which Ollama then recognises
    from the GGUF's tokenizer.chat_template), the tokens that end an answer and the project's
    sampling settings."""
    if not chat_template:
        template = ['TEMPLATE """{{ .Prompt }}"""']
    elif "<|im_start|>" in chat_template:
        template = [f'TEMPLATE """{CHATML_GO}"""']
    else:
        template = []
    text = "\n".join([
        "# Ollama: `ollama create NAME -f Modelfile`, then `ollama run NAME`",
        f"FROM ./{gguf_name}",
        *template,
        f"PARAMETER temperature {g.temperature}",
        f"PARAMETER top_k {g.top_k}",
        f"PARAMETER top_p {g.top_p}",
        f"PARAMETER repeat_penalty {g.repetition_penalty}",
        *(f"PARAMETER stop {json.dumps(stop)}" for stop in stops),
        f"PARAMETER num_ctx {context}",
        "",
    ])
    path = Path(folder) / "Modelfile"
    path.write_text(text, encoding="utf-8")
    return path
