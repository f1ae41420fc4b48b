"""The weights of a Hugging Face folder, checked from the files' headers, then read one tensor at
a time.

    files = find_weights(folder)                 # name -> (file, dtype, shape), headers only
    check_weights(files, expected_shapes(mc))    # every tensor there, with its shape, no others
    state = read_state_dict(files, names, torch.float32)   # our state dict, one copy in memory

safetensors files are a JSON header (names, dtypes, shapes, byte ranges) and the raw bytes, so
everything but the values is known before a byte of them is read: a missing or extra tensor, a
wrong shape, an integer (quantized) dtype or a truncated file (safetensors checks that the
header's byte ranges cover the file) is an error before anything is written. The values are then
read one tensor at a time, each file opened for that one tensor: the file is memory-mapped only
while its tensor is copied out, so memory holds the state dict being built and one tensor,
never a second copy of the model (importers/hf.py prints the peak).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import safe_open

from errors import DataError
from models.hf_layout import IGNORED_SUFFIXES, UNTIED_HEAD

from .source import INDEX, SINGLE

FLOAT_DTYPES = ("F32", "F16", "BF16")  # safetensors' names: what a trainable checkpoint holds
CHECK_SLICE = 1 << 20  # values per isfinite check
REDOWNLOAD = "download the checkpoint again (a copy interrupted half way is the usual cause)"


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """Where one tensor is, and what its header says it is."""

    file: Path
    dtype: str  # safetensors' name: F32, BF16, ...
    shape: tuple[int, ...]


def find_weights(folder: Path) -> dict[str, TensorEntry]:
    """Every tensor of the checkpoint in `folder` (model.safetensors, or the shards of
    model.safetensors.index.json), from the headers only. DataError for a folder without
    safetensors weights or a file that is not one."""
    from .source import weight_files

    if not (folder / INDEX).is_file() and not (folder / SINGLE).is_file():
        pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(
            p.name for p in folder.glob("*.pth"))
        if pickles:
            raise DataError(f"{folder} has its weights as {pickles[0]} only: a pickle, which can "
                            "run code when it is loaded, so it is not read",
                            "use a version of the model with model.safetensors (most models on "
                            "the Hub have one), or convert it with transformers where you trust "
                            "the file (`save_pretrained` writes safetensors)")
        raise DataError(f"{folder} holds no weights (no {SINGLE} or {INDEX})",
                        "pass the folder of a whole Hugging Face checkpoint: config.json, "
                        f"{SINGLE} (or shards and {INDEX}) and tokenizer.json")
    names = weight_files(folder)
    index = None
    if (folder / INDEX).is_file():
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))["weight_map"]
    entries: dict[str, TensorEntry] = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path} is missing ({INDEX} names it)", REDOWNLOAD)
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    piece = f.get_slice(key)
                    entries[key] = TensorEntry(path, piece.get_dtype(), tuple(piece.get_shape()))
        except Exception as error:  # safetensors' own error: truncated, not safetensors, ...
            reason = str(error).splitlines()[0][:160]
            raise DataError(f"{path} is not a readable safetensors file ({reason})",
                            REDOWNLOAD) from None
    for key, file in (index or {}).items():
        if key not in entries or entries[key].file.name != file:
            raise DataError(f"{INDEX} puts {key} in {file}, which does not hold it",
                            REDOWNLOAD)
    return entries


def check_weights(entries: dict[str, TensorEntry], expected: dict[str, tuple[int, ...]]) -> None:
    """DataError unless the files hold exactly the expected tensors (Hugging Face name ->
    shape), in a float dtype. A tied lm_head that is stored anyway is allowed (read_state_dict
    checks it is the embedding) and so are RoPE tables some files carry."""
    for name, shape in expected.items():
        entry = entries.get(name)
        if entry is None and name == UNTIED_HEAD:
            raise DataError(f"config.json says the output matrix is not tied to the embedding "
                            f"(tie_word_embeddings false), and the weights have no {name}",
                            "set tie_word_embeddings: true in config.json if the model shares "
                            "its embedding matrix, or download the checkpoint again")
        if entry is None:
            raise DataError(f"the weights have no {name}, which config.json's model needs",
                            "the weights and config.json are of different models: "
                            "download the checkpoint again")
        if entry.shape != shape:
            raise DataError(f"{name} is {list(entry.shape)} in {entry.file.name}, and "
                            f"config.json's model needs {list(shape)}",
                            "the weights and config.json are of different models: "
                            "download the checkpoint again")
        if entry.dtype not in FLOAT_DTYPES:
            raise DataError(f"{name} is stored as {entry.dtype}: quantized weights cannot be "
                            "trained", "use the unquantized (bf16 or fp32) version of the model")
    extra = [name for name in entries if name not in expected and name != UNTIED_HEAD
             and not name.endswith(IGNORED_SUFFIXES)]
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise DataError(f"the weights hold tensors our GPT has no place for: {shown}",
                        "config.json does not describe these weights (or they are of an "
                        "architecture with extra parts): use a plain Llama-family checkpoint")


def read_tensor(entry: TensorEntry, name: str, dtype: torch.dtype) -> torch.Tensor:
    """One tensor in `dtype`, copied out of its file (opened for just this read).

    get_tensor's tensor is a view of the memory-mapped file; the copy is ours, so the mapping
    (and the file's pages counted in this process's memory) goes as soon as it is made.
    """
    try:
        with safe_open(str(entry.file), framework="pt") as f:
            tensor = f.get_tensor(name).to(dtype, copy=True)
    except Exception as error:
        raise DataError(f"cannot read {name} from {entry.file}: "
                        f"{str(error).splitlines()[0][:160]}", REDOWNLOAD) from None
    # A damaged file whose header is intact holds random bytes, some of them NaN or infinite.
    # Checked in slices: isfinite's temporaries stay small next to a large embedding matrix.
    if not all(torch.isfinite(part).all() for part in tensor.view(-1).split(CHECK_SLICE)):
        raise DataError(f"{name} in {entry.file.name} holds NaN or infinite values",
                        REDOWNLOAD)
    return tensor


def read_state_dict(entries: dict[str, TensorEntry], names: dict[str, str],
                    dtype: torch.dtype, tied: bool) -> dict[str, torch.Tensor]:
    """Our state dict (our name -> tensor, see models/hf_layout.hf_names) from the files.
    `tied`: lm_head.weight is the embedding matrix itself (one tensor, saved once)."""
    state = {ours: read_tensor(entries[hf], hf, dtype) for ours, hf in names.items()}
    if tied:
        embedding = state["embed_tokens.weight"]
        if UNTIED_HEAD in entries and not torch.equal(
                read_tensor(entries[UNTIED_HEAD], UNTIED_HEAD, dtype), embedding):
            raise DataError("config.json says tie_word_embeddings, but the weights hold an "
                            f"{UNTIED_HEAD} that differs from the embedding",
                            "the weights and config.json disagree: set tie_word_embeddings to "
                            "false in config.json if the model has its own output matrix")
        state[UNTIED_HEAD] = embedding
    return state
