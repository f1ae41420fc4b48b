"""Use your model elsewhere: export it for transformers or llama.cpp, publish it on the Hugging
Face Hub, package it for Replicate.

    python deploy.py export                          # make export -> export/hf/ (transformers)
    python deploy.py export --dtype bf16             # half-size weights (fp32 is exact)
    python deploy.py export --format gguf            # export/gguf/ (llama.cpp, Ollama, LM Studio)
    python deploy.py export --format gguf --gguf-type q8_0
    python deploy.py deploy --repo-id you/my-llm     # make deploy -> the Hugging Face Hub
    python deploy.py deploy --target replicate       # deploy/replicate/ (cog.yaml + predictor)
    make export ARGS="--format gguf"
    make deploy ARGS="--target replicate"

Defaults come from the `deployment` section of llm.config.js; the checkpoint is best.pt, else
the newest step checkpoint, with the exact tokenizer it was trained with. `deploy` uploads the
export folder as it is (run `make export` first); it checks everything it can before sending a
byte, and never prints or stores your token.
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
from pathlib import Path

import torch

from config import add_config_arguments, config_from_args
from errors import run_cli
from exporters.run import deploy_hub, deploy_replicate, export_gguf, export_hf, load_trained
from project_lock import project_lock

# ---- command line ----


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python deploy.py",
        description="Export the trained model (Hugging Face folder, GGUF) or deploy it (the "
                    "Hugging Face Hub, Replicate). Defaults: deployment in llm.config.js.")
    parser.add_argument("action", choices=("export", "deploy"),
                        help="export: write export/hf (or export/gguf); deploy: upload or "
                             "package export/hf")
    parser.add_argument("--format", choices=("hf", "gguf"), default="hf",
                        help="export: 'hf' (transformers; default) or 'gguf' (llama.cpp, Ollama)")
    parser.add_argument("--target", choices=("huggingface", "replicate"), default="huggingface",
                        help="deploy: 'huggingface' (the Hub; default) or 'replicate'")
    for flag, key, what in (("--checkpoint", "checkpoint", "'auto', 'best', 'latest' or a .pt"),
                            ("--dtype", "dtype", "fp32, bf16 or fp16"),
                            ("--gguf-type", "gguf_type", "f32, f16 or q8_0"),
                            ("--repo-id", "repo_id", "your-name/model-name on the Hub"),
                            ("--private", "private", "true or false")):
        parser.add_argument(flag, dest=f"override:deployment.{key}", metavar="VALUE",
                            help=f"{what} (default: deployment.{key})")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))  # small, short CPU work

    if args.action == "deploy":
        (deploy_hub if args.target == "huggingface" else deploy_replicate)(cfg)
        return
    with project_lock("make export", Path(cfg.path).parent):
        trained = load_trained(cfg)
        (export_hf if args.format == "hf" else export_gguf)(cfg, trained)


if __name__ == "__main__":
    run_cli(main)
