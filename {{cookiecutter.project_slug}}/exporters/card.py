"""The model card: export/hf/README.md, what the Hub shows on the model's page.

It starts with the Hub's YAML metadata (license, language, library, tags, pipeline), then says
what the model is, what it was trained on, how well it did, one greedy sample, and the exact
commands to load it. Every number comes from the checkpoint and data/processed/meta.json; a
token, a path on this machine or anything else private never goes in.
"""

from __future__ import annotations

import json
from typing import Any

from config import Config, valid_repo_id

# Per architecture: the transformers class that loads the export, the Hub's pipeline tag, the
# tags, and what the model is, in a line.
AUTO_CLASSES = {"gpt": "AutoModelForCausalLM", "bert": "AutoModelForMaskedLM",
                "t5": "AutoModelForSeq2SeqLM"}
PIPELINES = {"gpt": "text-generation", "bert": "fill-mask", "t5": "text2text-generation"}
TAGS = {"gpt": ["create-llm", "llama", "text-generation", "pytorch", "base-model"],
        "bert": ["create-llm", "bert", "fill-mask", "pytorch", "masked-lm"],
        "t5": ["create-llm", "t5", "text2text-generation", "pytorch", "span-corruption"]}


def yaml_metadata(cfg: Config, base_model: str | None = None) -> str:
    """The block between `---` lines. Strings are written as JSON, which is valid YAML.
    base_model: the Hub id `make import` started from (the Hub links the two models)."""
    d, architecture = cfg.deployment, cfg.model.architecture
    lines = ["---", f"license: {json.dumps(d.license)}", "language:", f"- {d.language}",
             "library_name: transformers", f"pipeline_tag: {PIPELINES[architecture]}"]
    if base_model:
        lines.append(f"base_model: {json.dumps(base_model)}")
    lines += ["tags:", *(f"- {tag}" for tag in TAGS[architecture])]
    return "\n".join(lines + ["---"])


def origin(info: dict[str, Any]) -> tuple[str | None, str | None]:
    """(Hub id, how to name it) of the published model `make import` started from: a Hub id is
    named; a local folder is not (a path on this machine never goes in the card)."""
    source = info.get("imported_from")
    if not source:
        return None, None
    if valid_repo_id(source) and not source.startswith("/"):
        return source, f"[{source}](https://huggingface.co/{source})"
    return None, "a published checkpoint (imported from a local folder)"


def training_data(meta: dict[str, Any] | None) -> str:
    """One paragraph on the text the model saw, from data/processed/meta.json."""
    if not meta:
        return "Not recorded (data/processed/meta.json was not found at export time)."
    sources = "; ".join(meta.get("sources", [])) or "the project's data/raw/ folder"
    return (f"{sources[:1].upper() + sources[1:]}. {meta.get('train_tokens', 0):,} training tokens "
            f"({meta.get('train_bytes', 0):,} bytes, {meta.get('train_documents', 0):,} "
            f"documents); validation: {meta.get('val_source', 'a held-out split')} "
            f"({meta.get('val_tokens', 0):,} tokens).")


def _metric(value: float | None, digits: int = 4) -> str:
    return "not measured" if value is None else f"{value:.{digits}f}"


def describe(m: dict[str, Any]) -> tuple[str, str, str]:
    """(architecture row of the table, what the model does, a one-line usage note)."""
    if m["architecture"] == "bert":
        encoder = ("ModernBertForMaskedLM (encoder-only: pre-norm, rotary positions, GeGLU, no "
                   "biases, tied decoder)" if m.get("variant") == "modernbert" else
                   "BertForMaskedLM (encoder-only: post-LN, learned positions, GELU, tied decoder)")
        return (encoder,
                "It is a masked language model: it fills in [MASK] tokens from the words around "
                "them (and its hidden states encode text); it does not write text.",
                "The tokenizer adds [CLS] ... [SEP] around a text, as in training.")
    if m["architecture"] == "t5":
        return ("T5ForConditionalGeneration (encoder-decoder: T5 v1.1 layers with gated GELU, "
                "relative position buckets, tied embeddings)",
                "It was trained on span corruption: give it a text with sentinels "
                "(<extra_id_0>, <extra_id_1>, ...) where words are missing, and it writes each "
                "sentinel followed by the words it guesses; it was not trained to follow "
                "instructions.",
                "The tokenizer ends every input with </s>, as in training; the decoder starts "
                "from <pad>.")
    name = "Qwen2ForCausalLM" if m.get("qkv_bias") else "LlamaForCausalLM"
    return (f"{name} (decoder-only: RMSNorm, RoPE, SwiGLU"
            f"{', tied embeddings' if m['tie_embeddings'] else ''})",
            "It is a *base* model: it continues text; it was not trained to follow instructions.",
            "No `trust_remote_code`: it is a plain Llama model. The tokenizer adds no "
            "beginning-of-text token;")


def usage(m: dict[str, Any], where: str, prompt: str) -> str:
    """The Python that loads the export and uses it as `make generate` does."""
    auto = AUTO_CLASSES[m["architecture"]]
    head = (f"from transformers import {auto}, AutoTokenizer, pipeline\n\n"
            f"model = {auto}.from_pretrained(\"{where}\")\n"
            f"tokenizer = AutoTokenizer.from_pretrained(\"{where}\")\n")
    if m["architecture"] == "bert":
        return head + ("fill = pipeline(\"fill-mask\", model=model, tokenizer=tokenizer)\n"
                       f"print(fill({json.dumps(prompt)}, top_k=5))")
    if m["architecture"] == "t5":
        # transformers 5 removed pipeline("text2text-generation") (4.x still has it): generate()
        return (f"from transformers import {auto}, AutoTokenizer\n\n"
                f"model = {auto}.from_pretrained(\"{where}\")\n"
                f"tokenizer = AutoTokenizer.from_pretrained(\"{where}\")\n"
                f"ids = tokenizer({json.dumps(prompt)}, return_tensors=\"pt\").input_ids\n"
                "out = model.generate(ids, max_new_tokens=50, do_sample=False)\n"
                "print(tokenizer.decode(out[0], skip_special_tokens=False))  # each sentinel, "
                "then its span")
    return head + ("generate = pipeline(\"text-generation\", model=model, tokenizer=tokenizer)\n"
                   f"print(generate({json.dumps(prompt)}, max_new_tokens=50, do_sample=False)"
                   "[0][\"generated_text\"])")


def model_card(cfg: Config, info: dict[str, Any], parameters: int, sample: tuple[str, str],
               meta: dict[str, Any] | None, name: str, repo_id: str = "",
               dtype: str = "fp32") -> str:
    """README.md of the export. `sample` is (prompt, what `make generate` makes of it greedily:
    gpt's continuation, bert's and t5's the prompt with its blanks filled in); `name` is the
    project's; `repo_id` is where it will live on the Hub ('' = a local folder, export/hf)."""
    m, where = info["model_config"], repo_id or "export/hf"
    m = {"architecture": "gpt", **m}
    name = repo_id.split("/")[-1] if repo_id else name
    prompt, text = sample
    architecture_row, what, note = describe(m)
    shape = f"{m['layers']} layers, width {m['dim']}, {m['heads']} heads"
    if m["architecture"] == "gpt":
        shape += f" ({m['kv_heads']} key/value)"
    if m["architecture"] == "t5":
        shape = shape.replace("layers", "encoder + as many decoder layers")
    rows = [("Architecture", architecture_row),
            ("Preset", cfg.model.preset), ("Parameters", f"{parameters:,}"),
            ("Shape", f"{shape}, context {m['max_length']} tokens"),
            ("Tokenizer", f"{cfg.tokenizer.type}, {m['vocab_size']:,} tokens"),
            ("Weights", dtype), ("Training steps", f"{info.get('step', 0):,}"),
            ("Tokens seen", f"{info.get('tokens_seen', 0):,}"),
            ("Validation loss", _metric(info.get("val_loss")))]
    metrics = info.get("metrics", {})
    for key, label in (("val_bpb", "Validation bits per byte"),
                       ("val_mlm_accuracy", "Validation masked-token accuracy"),
                       ("val_span_match", "Validation spans exactly right")):
        value = metrics.get(key, info.get(key))
        if key != "val_bpb" and value is not None:
            rows.append((label, f"{100 * value:.1f}%"))
        elif m["architecture"] == "gpt" and key == "val_bpb":
            rows.append((label, _metric(value)))
    table = "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    shown = prompt + text if m["architecture"] == "gpt" else text
    how = "The likeliest token for each [MASK]" if m["architecture"] == "bert" else \
        "Greedy (temperature 0)"
    end = f" `{cfg.tokenizer.special_tokens[0]}` ends every training document." \
        if m["architecture"] == "gpt" else ""
    base_model, started = origin(info)
    tokens = f"{info.get('tokens_seen', 0):,}"
    if started is None:
        intro = ("A small language model trained from scratch with "
                 "[create-llm](https://pypi.org/project/create-llm/).")
        limits = (f"Trained on {tokens} tokens, it knows little beyond the style of its\n"
                  "training text, and makes things up.")
    else:
        intro = (f"A language model that starts from {started}, trained further on {tokens} "
                 "tokens with [create-llm](https://pypi.org/project/create-llm/).")
        limits = ("It has the knowledge and the limits of the model it starts from, and makes "
                  "things up.")
    return f"""{yaml_metadata(cfg, base_model)}

# {name}

{intro}
{what}

{table}

## Training data

{training_data(meta)}

## Sample

{how}, from the prompt `{prompt}`:

```
{shown}
```

## Use it

```python
{usage(m, where, prompt)}
```

{note}{end}

## Limitations

{limits} Do not rely on what it writes.
"""
