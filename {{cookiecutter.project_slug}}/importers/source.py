"""Where `make import ARGS="--from ..."` reads a checkpoint: a local folder, or a Hub id.

    folder = checkpoint_folder("~/models/SmolLM2-135M")        # a folder: used where it is
    folder = checkpoint_folder("HuggingFaceTB/SmolLM2-135M")   # a Hub id: downloaded first

A Hub id is fetched with huggingface_hub's snapshot_download into the Hugging Face cache
(~/.cache/huggingface, or $HF_HOME), never into the project, and only the files an import reads:
config.json and the tokenizer's files first, then the weights that config names (a repository
may hold the same weights in several formats; only one set is downloaded). Without a network
(or with HF_HUB_OFFLINE=1 and nothing cached) it fails at once, with the way around it: download
the folder on a machine that has one, and pass its path.
"""

from __future__ import annotations

import json
from pathlib import Path

from config import valid_repo_id
from errors import DataError

INDEX = "model.safetensors.index.json"  # the shards of a large checkpoint, and their tensors
SINGLE = "model.safetensors"
# Everything an import reads besides the weights.
METADATA_FILES = ["config.json", INDEX, "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "chat_template.jinja", "generation_config.json"]


def checkpoint_folder(source: str) -> Path:
    """The folder of the checkpoint `source` names: a local path, else a Hub id downloaded
    into the Hugging Face cache. DataError when it is neither, or the download fails."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataError(f"--from {source} is a file, not a folder",
                            "pass the folder that holds config.json, model.safetensors and "
                            "tokenizer.json")
        return path.resolve()
    if not valid_repo_id(source):
        raise DataError(f"--from {source}: there is no such folder, and it is not a Hugging "
                        "Face Hub id (owner/name)",
                        "pass the path of a Hugging Face folder (config.json, model.safetensors, "
                        "tokenizer.json) or a Hub id such as HuggingFaceTB/SmolLM2-135M")
    return download(source)


def download(repo_id: str) -> Path:
    """snapshot_download of what an import needs; each way it can fail as a DataError."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:
        raise DataError("downloading from the Hugging Face Hub needs the huggingface_hub "
                        "package", "install it: `.venv/bin/pip install huggingface_hub` (or "
                                   "`make setup`)") from None
    local = repo_id.split("/")[-1]
    elsewhere = (f"download the folder elsewhere (`hf download {repo_id} --local-dir {local}` on "
                 f"a machine with a network) and pass its path: --from ./{local}")
    print(f"Downloading {repo_id} from the Hugging Face Hub (into its cache)...")
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=METADATA_FILES))
        return Path(snapshot_download(repo_id, allow_patterns=weight_files(folder)))
    except GatedRepoError:
        raise DataError(f"{repo_id} is a gated model: its files need an accepted licence",
                        f"accept it on https://huggingface.co/{repo_id}, then log in (`hf auth "
                        f"login`, or set HF_TOKEN); or {elsewhere}") from None
    except RepositoryNotFoundError:
        raise DataError(f"{repo_id} was not found on the Hugging Face Hub (or it is private)",
                        "check the id (owner/name, as in its huggingface.co address); for a "
                        "private model log in first (`hf auth login`, or set HF_TOKEN)") from None
    except LocalEntryNotFoundError as error:  # offline, no connection, or HF_HUB_OFFLINE=1
        reason = " ".join(str(error).split())[:200]
        raise DataError(f"cannot download {repo_id}: no connection to the Hugging Face Hub "
                        f"({reason})", elsewhere) from None
    except (HfHubHTTPError, OSError) as error:  # the Hub answered with an error, a full disk
        reason = " ".join(str(error).split())[:200]
        raise DataError(f"cannot download {repo_id}: {reason}", elsewhere) from None


def weight_files(folder: Path) -> list[str]:
    """The safetensors files a checkpoint's weights are in: the shards its index names, else
    model.safetensors."""
    index = folder / INDEX
    if not index.is_file():
        return [SINGLE]
    try:
        return sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (ValueError, KeyError, AttributeError, TypeError):
        raise DataError(f"{index} is not a safetensors index (no weight_map)",
                        "download the checkpoint again") from None
