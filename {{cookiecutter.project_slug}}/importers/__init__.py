"""Start from a published model instead of from scratch (`make import ARGS="--from ..."`).

    hf.py               the entry point: a Hugging Face checkpoint -> this project's step 0
                        (checkpoints/), tokenizer (tokenizer/) and model config (llm.config.js)
    source.py           where --from points: a local folder, or a Hub id (snapshot_download)
    weights.py          the safetensors files: headers checked, tensors read one at a time
    tokenizer_files.py  tokenizer.json, its special tokens and chat template
    project_config.py   llm.config.js's values rewritten in place, comments kept

The name table between Hugging Face's tensors and ours is models/hf_layout.py, the same one
`make export` writes with, so an import followed by an export gives back the same tensors.
"""
