"""export/hf/ -> deploy/replicate/: what `cog push` needs to serve the model on Replicate.

    python deploy.py deploy --target replicate     # make deploy ARGS="--target replicate"
    cd deploy/replicate && cog login && cog push r8.im/your-name/my-llm

deploy/replicate/ holds cog.yaml (the Python packages, pinned to the versions installed here,
and `run: predict.py:Runner`), predict.py (gpt: exporters/cog_predictor.py, prompt,
max_new_tokens, temperature, top_k, top_p -> streamed text; bert: exporters/cog_fill_mask.py,
text with [MASK]s -> candidates; t5: exporters/cog_text2text.py, prompt -> output text) and
model/ (a copy of the Hugging Face export).
Pushing builds a Docker image, so it needs the cog command-line tool and Docker; when either is
missing this says so and prints the commands, and nothing is pushed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from errors import DeploymentError

# The predictor for each exported class (a project has the one of its architecture).
PREDICTORS = {"LlamaForCausalLM": "cog_predictor.py", "BertForMaskedLM": "cog_fill_mask.py",
              "ModernBertForMaskedLM": "cog_fill_mask.py",
              "T5ForConditionalGeneration": "cog_text2text.py"}
PACKAGES = {"torch": ">=2.4", "transformers": ">=4.40", "tokenizers": ">=0.19",
            "safetensors": ">=0.4"}


def pinned(package: str) -> str:
    """'torch==2.5.1' for the version installed here (local tags like '+cpu' dropped: the
    image installs the build for its own machine), else a floor that works."""
    try:
        return f"{package}=={metadata.version(package).split('+')[0]}"
    except metadata.PackageNotFoundError:
        return package + PACKAGES[package]


def cog_yaml() -> str:
    packages = "\n".join(f'    - "{pinned(name)}"' for name in PACKAGES)
    return f"""# Replicate / cog: `cog predict -i prompt="Once upon a time"`, `cog push r8.im/NAME`.
# Written by `make deploy ARGS="--target replicate"`; predict.py loads model/.
build:
  gpu: false
  python_version: "3.11"
  python_packages:
{packages}
run: "predict.py:Runner"
"""


def predictor_for(export: Path) -> Path:
    """The predictor of the exported model's class (config.json's "architectures")."""
    config = json.loads((Path(export) / "config.json").read_text(encoding="utf-8"))
    return Path(__file__).resolve().parent / PREDICTORS[config["architectures"][0]]


def write_replicate_folder(export: Path, target: Path) -> Path:
    """deploy/replicate/ from the export folder (replaced as a whole: nothing stale stays)."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(export, tmp / "model")
        shutil.copyfile(predictor_for(export), tmp / "predict.py")
        (tmp / "cog.yaml").write_text(cog_yaml(), encoding="utf-8")
        (tmp / ".dockerignore").write_text("__pycache__\n.cog/tmp\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(target)
    except OSError as error:
        raise DeploymentError(f"could not write {target}/: {error.strerror or error}",
                              "free some disk space, or run from a folder you can write to"
                              ) from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return target


def push(target: Path, model_name: str) -> None:
    """`cog push` when cog and Docker are here; otherwise DeploymentError with the commands."""
    name = model_name or "your-name/model-name"
    commands = (f"  cd {target}\n  cog login\n  cog push r8.im/{name}")
    missing = [tool for tool in ("cog", "docker") if shutil.which(tool) is None]
    if missing or not model_name:
        reason = (f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed"
                  if missing else "no Replicate model name is set (deployment.replicate_model)")
        print(f"To push it to Replicate (create the model at https://replicate.com/create "
              f"first):\n{commands}")
        raise DeploymentError(
            f"{target}/ is ready, but nothing was pushed to Replicate: {reason}",
            "install the cog CLI (https://cog.run) and Docker, set deployment.replicate_model, "
            "then run the commands above" if missing else
            "set deployment.replicate_model: 'your-name/model-name' and run `make deploy "
            "ARGS=\"--target replicate\"` again")
    print(f"Pushing {target}/ to r8.im/{name} (cog builds a Docker image first)...")
    result = subprocess.run(["cog", "push", f"r8.im/{name}"], cwd=target)
    if result.returncode != 0:
        raise DeploymentError(f"`cog push r8.im/{name}` failed (exit code {result.returncode})",
                              f"read cog's output above, then retry:\n{commands}")
    print(f"Pushed: https://replicate.com/{name}")
