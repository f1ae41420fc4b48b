"""The model card: export/hf/README.md, what the Hub shows on the model's page.

It starts with the Hub's YAML metadata (license, language, library, tags, pipeline), then says
what the model is, what it was trained on, how well it did, one greedy sample, and the exact
commands to load it. Every number comes from the checkpoint and data/processed/meta.json; a
token, a path on this machine or anything else private never goes in.
"""

from __future__ import annotations

import json
from typing import Any

from config import Config

TAGS = ["create-llm", "llama", "text-generation", "pytorch", "base-model"]


def yaml_metadata(cfg: Config) -> str:
    """The block between `---` lines. Strings are written as JSON, which is valid YAML."""
    d = cfg.deployment
    lines = ["---", f"license: {json.dumps(d.license)}", "language:", f"- {d.language}",
             "library_name: transformers", "pipeline_tag: text-generation", "tags:"]
    lines += [f"- {tag}" for tag in TAGS]
    return "\n".join(lines + ["---"])


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


def model_card(cfg: Config, info: dict[str, Any], parameters: int, sample: tuple[str, str],
               meta: dict[str, Any] | None, name: str, repo_id: str = "",
               dtype: str = "fp32") -> str:
    """README.md of the export. `sample` is (prompt, greedy continuation); `name` is the
    project's; `repo_id` is where it will live on the Hub ('' = a local folder, export/hf)."""
    m, where = info["model_config"], repo_id or "export/hf"
    name = repo_id.split("/")[-1] if repo_id else name
    prompt, text = sample
    rows = [("Architecture", "LlamaForCausalLM (decoder-only: RMSNorm, RoPE, SwiGLU"
             f"{', tied embeddings' if m['tie_embeddings'] else ''})"),
            ("Preset", cfg.model.preset), ("Parameters", f"{parameters:,}"),
            ("Shape", f"{m['layers']} layers, width {m['dim']}, {m['heads']} heads "
             f"({m['kv_heads']} key/value), context {m['max_length']} tokens"),
            ("Tokenizer", f"{cfg.tokenizer.type}, {m['vocab_size']:,} tokens"),
            ("Weights", dtype), ("Training steps", f"{info.get('step', 0):,}"),
            ("Tokens seen", f"{info.get('tokens_seen', 0):,}"),
            ("Validation loss", _metric(info.get("val_loss"))),
            ("Validation bits per byte", _metric(info.get("val_bpb")))]
    table = "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    return f"""{yaml_metadata(cfg)}

# {name}

A small language model trained from scratch with [create-llm](https://pypi.org/project/create-llm/).
It is a *base* model: it continues text; it was not trained to follow instructions.

{table}

## Training data

{training_data(meta)}

## Sample

Greedy (temperature 0), from the prompt `{prompt}`:

```
{prompt}{text}
```

## Use it

```python
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

model = AutoModelForCausalLM.from_pretrained("{where}")
tokenizer = AutoTokenizer.from_pretrained("{where}")
generate = pipeline("text-generation", model=model, tokenizer=tokenizer)
print(generate({json.dumps(prompt)}, max_new_tokens=50, do_sample=False)[0]["generated_text"])
```

No `trust_remote_code`: it is a plain Llama model. The tokenizer adds no beginning-of-text token;
`{cfg.tokenizer.special_tokens[0]}` ends every training document.

## Limitations

Trained on {info.get('tokens_seen', 0):,} tokens, it knows little beyond the style of its
training text, and makes things up. Do not rely on what it writes.
"""
