"""Checkpoint files: write them safely, find them, verify them, load them.

Layout of the checkpoints folder:

    checkpoints/step_000500.pt   + step_000500.json   one per save_interval (newest N kept)
    checkpoints/best.pt          + best.json          lowest validation loss so far

A run with FSDP (`make train NPROC=N`, training.parallelism 'fsdp') writes sharded checkpoints
instead, folders with one file per process (runtime/sharded_checkpoints.py writes them):

    checkpoints/step_000500.dcp/ + step_000500.json
    checkpoints/best_000800.dcp/ + best.json          best.json names the best folder

Everything here reads both kinds: finding the newest or the best, verifying, rotating, and
loading (a sharded checkpoint's weights are put together on load, so evaluate, generate, chat,
compare and export do not care how the model was trained).

Each .pt holds only tensors and plain Python values (it loads with `weights_only=True`, so a
checkpoint can never run code when opened). Each .json sidecar records the step, validation
loss, size and SHA-256 of its .pt, and is written *after* the .pt: a .pt without a matching
sidecar is an interrupted or corrupt save and is skipped with a message.

Writes are atomic: a temporary file in the same folder, fsync, then rename. A crash or
`kill -9` at any moment leaves the previous checkpoint untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import re
import shutil
import sys
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

from errors import ConfigurationError, TrainingError

FORMAT_VERSION = 1
STEP_PATTERN = re.compile(r"^step_(\d+)\.(pt|dcp)$")
SHARDED_SUFFIX = ".dcp"
TRAINER_STATE = "trainer.pt"  # in a sharded checkpoint: everything but the tensors of DCP


# ---- writing ----


class _HashingWriter:
    """A file wrapper that hashes bytes as torch.save writes them (no second read pass)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.sha256 = hashlib.sha256()
        self.size = 0
        # What stopped a write: torch.save hides it behind a vague RuntimeError (an OSError for a
        # full disk, a KeyboardInterrupt for a second Ctrl+C during the save).
        self.error: BaseException | None = None

    def write(self, data: bytes) -> int:
        # All of it inside the try: a second Ctrl+C can land on any line, and torch.save would
        # report it as a vague RuntimeError ("unexpected pos") unless it is recorded here.
        try:
            self.sha256.update(data)
            self.size += len(data)
            return self.file.write(data)
        except BaseException as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def _fsync_dir(folder: Path) -> None:
    try:  # makes the rename itself durable; not possible on every OS
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """Hidden, in the same folder (so the rename is atomic), and named after this process."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def fsync_path(path: Path) -> None:
    """Make a written file durable (as save_checkpoint does for its own file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_sidecar(path: Path, sidecar: dict[str, Any]) -> None:
    """Atomically write the .json sidecar of checkpoint `path`."""
    _atomic_write_bytes(sidecar_path(path), json.dumps(sidecar, indent=2).encode())
    _fsync_dir(path.parent)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def check_writable(folder: str | Path) -> None:
    """TrainingError now, rather than at the first save an hour into training."""
    folder = Path(folder)
    probe = temp_path(folder / "write-test")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise TrainingError(
            f"cannot write checkpoints to {folder}/: {error.strerror or error}",
            "make that folder writable, or point checkpoints.dir in llm.config.js at a "
            "writable folder",
        ) from None


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the half-written files a killed run left (`.step_000500.pt.tmp-<pid>`), unless
    that process is still running; return what was deleted."""
    removed = []
    for path in Path(folder).glob(".*.tmp-*") if Path(folder).is_dir() else []:
        pid = path.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and _process_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            remove(path)
            removed.append(path)
    return removed


def remove(path: Path) -> None:
    """Delete a checkpoint file or a sharded checkpoint's folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def save_checkpoint(path: str | Path, state: dict[str, Any], info: dict[str, Any]) -> dict:
    """Atomically write `state` to `path` and its sidecar; return the sidecar dict.

    On any failure (disk full, read-only folder) the previous file at `path` is untouched and a
    TrainingError says what happened.
    """
    path = Path(path)
    tmp = temp_path(path)
    writer = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            writer = _HashingWriter(f)
            torch.save(state, writer)
            f.flush()
            os.fsync(f.fileno())
        sidecar = {
            **info,
            "file": path.name,
            "size": writer.size,
            "sha256": writer.sha256.hexdigest(),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "format_version": FORMAT_VERSION,
        }
        # Order matters: the old sidecar no longer matches once the new .pt is in place, so a
        # crash between the two renames makes this file "unverified" (skipped), never "wrong".
        os.replace(tmp, path)
        _atomic_write_bytes(sidecar_path(path), json.dumps(sidecar, indent=2).encode())
        _fsync_dir(path.parent)
        return sidecar
    except (OSError, RuntimeError) as error:  # torch.save reports a failed write as RuntimeError
        error = (writer and writer.error) or error
        if isinstance(error, KeyboardInterrupt):  # the user stopped the save, not the disk
            print(f"\nInterrupted while writing {path}: that file was not replaced; the earlier "
                  "checkpoints are intact (`make resume` continues from the newest).",
                  file=sys.stderr)
            raise KeyboardInterrupt from None
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0][:160]
        raise TrainingError(
            f"could not write checkpoint {path}: {reason}",
            "free some disk space or make the checkpoints folder writable "
            "(checkpoints.dir in llm.config.js); earlier checkpoints are untouched",
        ) from error
    finally:
        with contextlib.suppress(OSError):  # e.g. the folder is not a folder: nothing to remove
            tmp.unlink(missing_ok=True)


def sidecar_path(path: str | Path) -> Path:
    """step_000500.pt or .dcp -> step_000500.json; best.pt and best_000800.dcp -> best.json."""
    path = Path(path)
    if path.suffix == SHARDED_SUFFIX and path.name.startswith("best_"):
        return path.with_name("best.json")
    return path.with_suffix(".json")


def is_sharded(path: str | Path) -> bool:
    """Whether `path` is a sharded checkpoint (a .dcp folder) rather than a .pt file."""
    return Path(path).suffix == SHARDED_SUFFIX


def rotate(folder: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` step checkpoints (never the best, never an imported
    model's step 0: `make import` cannot be undone from here); return the deleted."""
    steps = [(step, path) for step, path in list_step_checkpoints(folder)
             if not (step == 0 and (read_sidecar(path) or {}).get("imported_from"))]
    deleted = []
    for _, path in steps[:-keep] if keep > 0 else []:
        remove(path)
        sidecar_path(path).unlink(missing_ok=True)
        deleted.append(path)
    return deleted


def prune_best(folder: str | Path) -> None:
    """Delete the best checkpoints that best.json no longer names (after a new best was saved;
    a run that changes between one file and sharded leaves the other kind behind)."""
    folder = Path(folder)
    current = (read_sidecar(folder / "best.pt") or {}).get("file")
    for path in [folder / "best.pt", *folder.glob(f"best_*{SHARDED_SUFFIX}")]:
        if path.exists() and path.name != current:
            remove(path)


def has_checkpoints(folder: str | Path) -> bool:
    """Whether a run has saved anything in `folder` (usable or not)."""
    folder = Path(folder)
    return bool(list_step_checkpoints(folder)) or (folder / "best.pt").exists() or (
        folder / "best.json").exists()


def model_folder(folder: str | Path, which: str = "auto") -> Path:
    """Where a reader looks for 'auto' / 'best' / 'latest': the tuned model's run folder
    (<folder>/finetune/, `make finetune`) when it has a checkpoint, else `folder`. make chat,
    make export and make eval ARGS=--chat use the model that answers; a path is a path."""
    tuned = Path(folder) / "finetune"
    return tuned if which in ("auto", "best", "latest") and has_checkpoints(tuned) \
        else Path(folder)


# ---- finding and verifying ----


def list_step_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every step checkpoint in the folder, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = STEP_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_sidecar(path: str | Path) -> dict | None:
    """The .json sidecar of checkpoint `path`, or None (missing, unreadable, or not a sidecar:
    every one names the file it describes; a .json file is never its own sidecar)."""
    if sidecar_path(path) == Path(path) or not sidecar_path(path).is_file():
        return None
    try:
        sidecar = json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        return None
    return sidecar if isinstance(sidecar, dict) and isinstance(sidecar.get("file"), str) \
        else None


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            sha.update(block)
    return sha.hexdigest()


def verify_checkpoint(path: str | Path, full: bool = True) -> str | None:
    """None if the file (or sharded folder) is complete and matches its sidecar, else what is
    wrong."""
    path = Path(path)
    if not (path.is_dir() if is_sharded(path) else path.is_file()):
        return "the file does not exist"
    sidecar = read_sidecar(path)
    if sidecar is None:
        return "its .json sidecar is missing or unreadable (an interrupted save?)"
    if sidecar.get("file", path.name) != path.name:
        return f"its sidecar describes {sidecar.get('file')} (a newer save?)"
    if is_sharded(path):
        return _verify_files(path, sidecar.get("files", {}), full)
    size = path.stat().st_size
    if size != sidecar.get("size"):
        return f"it has {size} bytes but its sidecar says {sidecar.get('size')} (truncated?)"
    if full and file_sha256(path) != sidecar.get("sha256"):
        return "its checksum does not match its sidecar (the file is corrupt)"
    return None


def _verify_files(folder: Path, files: dict[str, dict], full: bool) -> str | None:
    """A sharded checkpoint's files against the sizes and checksums its sidecar lists."""
    if TRAINER_STATE not in files:
        return "its sidecar lists no files (an interrupted save?)"
    for name, facts in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing from it"
        if path.stat().st_size != facts.get("size"):
            return f"{name} has {path.stat().st_size} bytes but its sidecar says " \
                   f"{facts.get('size')} (truncated?)"
        if full and file_sha256(path) != facts.get("sha256"):
            return f"the checksum of {name} does not match its sidecar (the file is corrupt)"
    return None


def _first_good(paths: list[Path], warn: bool,
                skipped: list[tuple[Path, str]] | None = None) -> Path | None:
    """The first of `paths` that verifies; the others are named (with what is wrong), or
    added to `skipped`."""
    for path in paths:
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        if skipped is not None:
            skipped.append((path, problem))
        elif warn:
            print(f"Skipping {path}: {problem}")
    return None


def latest_checkpoint(folder: str | Path, warn: bool = True,
                      skipped: list[tuple[Path, str]] | None = None) -> Path | None:
    """The newest step checkpoint that verifies; corrupt ones are named and skipped."""
    return _first_good([path for _, path in reversed(list_step_checkpoints(folder))], warn,
                       skipped)


def best_checkpoint(folder: str | Path, warn: bool = True,
                    skipped: list[tuple[Path, str]] | None = None) -> Path | None:
    """The best checkpoint (best.pt, or the best_*.dcp folder best.json names) if it verifies
    (named and skipped if it does not)."""
    folder = Path(folder)
    named = (read_sidecar(folder / "best.pt") or {}).get("file")
    path = folder / named if isinstance(named, str) and "/" not in named else folder / "best.pt"
    return _first_good([path] if path.exists() else [], warn, skipped)


def find_checkpoint(which: str, folder: str | Path, prefer: str = "best",
                    warn: bool = True, skipped: list[tuple[Path, str]] | None = None) -> Path:
    """Resolve 'auto' | 'best' | 'latest' | a path to a verified checkpoint file.

    `auto` means best then latest for inference (prefer='best') and latest then best for
    resuming (prefer='latest'). `warn`: name each damaged checkpoint that is skipped (or, with
    `skipped`, add it there instead, with what is wrong).
    """
    folder = Path(folder)
    if which not in ("auto", "best", "latest"):
        path = Path(which)
        try:
            is_folder = path.is_dir()
            problem = None if is_folder and not is_sharded(path) else verify_checkpoint(path)
        except (OSError, ValueError) as error:  # a name too long, a NUL in it
            raise TrainingError(f"checkpoint {which[:80]} cannot be read: "
                                f"{getattr(error, 'strerror', None) or error}",
                                f"list the available ones with `ls {folder}`") from None
        if is_folder and not is_sharded(path):  # a project folder or a checkpoints folder
            inner = path / "checkpoints" if (path / "checkpoints").is_dir() else path
            return find_checkpoint("auto", inner, prefer)
        if problem == "the file does not exist":
            raise TrainingError(f"checkpoint {path} not found",
                                f"list the available ones with `ls {folder}`")
        if problem is not None and read_sidecar(path) is not None:
            raise TrainingError(f"checkpoint {path} is unusable: {problem}",
                                f"pick another one from {folder}/, or leave out the path to use "
                                "the newest good one")
        return path  # no sidecar (e.g. copied by hand): torch.load's own checks still apply
    order = {"best": [best_checkpoint], "latest": [latest_checkpoint],
             "auto": [best_checkpoint, latest_checkpoint] if prefer == "best"
             else [latest_checkpoint, best_checkpoint]}[which]
    for finder in order:
        path = finder(folder, warn, skipped)
        if path is not None:
            return path
    if has_checkpoints(folder):
        raise TrainingError(
            f"no usable checkpoint in {folder}/: every one there is damaged (see above)",
            "start a new run with `make train ARGS=--fresh` (it moves these files to "
            f"{folder}/previous/), or put back a good copy of one of them",
        )
    raise TrainingError(
        f"no usable checkpoint in {folder}/",
        "train a model first: `make train` (it saves checkpoints as it goes)",
    )


# ---- loading ----


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    weights: bool = True, mmap: bool = False) -> dict:
    """Load a checkpoint safely: tensors and plain values only, never arbitrary objects.

    A sharded checkpoint gives the same dict as a single file, without the optimizer, with its
    weights put together ("model"; left out with weights=False: resuming loads them shard by
    shard, see runtime/sharded_checkpoints.py). mmap (CPU only): read tensors from the file as
    they are used, so that several processes loading one file share the page cache.
    """
    path = Path(path)
    if is_sharded(path):
        state = load_checkpoint(path / TRAINER_STATE, map_location, weights=False)
        if weights:
            state["model"] = load_sharded_weights(path, map_location)
        return state
    check_is_checkpoint_file(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise TrainingError(
            f"refused to load {path}: it contains Python objects other than tensors and plain "
            f"values, which could run code ({str(error).splitlines()[0][:160]})",
            "only load checkpoints this project wrote; delete the file if you do not trust it",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        reason = str(error).splitlines()[0].split(". ")[0][:160]  # torch's first sentence
        raise TrainingError(
            f"could not read checkpoint {path}: {reason}",
            "the file is truncated or corrupt; use another checkpoint (`--resume auto` picks "
            "the newest good one)",
        ) from None
    check_is_checkpoint(state, path)
    return state


# ---- is this ours? (every checkpoint is loaded behind these two checks) ----

# What every checkpoint of this project holds (Trainer.checkpoint_state), with its type; the
# trainer.pt of a sharded one holds its tensors in the shards, not in "model".
CHECKPOINT_KEYS = {"model": dict, "model_config": dict, "step": int}
NOT_A_CHECKPOINT = ("pass a checkpoint this project saved: checkpoints/best.pt or "
                    "checkpoints/step_*.pt (`ls checkpoints/` lists them)")


def check_is_checkpoint_file(path: Path) -> None:
    """TrainingError unless `path` is laid out as torch.save writes a file (a zip archive
    holding a pickle), checked before anything is unpickled: a text file, llm.config.js or
    /etc/passwd is named for what it is instead of failing deep inside torch.load."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError as error:
        raise TrainingError(f"could not read checkpoint {path}: {error.strerror or error}",
                            NOT_A_CHECKPOINT) from None
    if not head.startswith(b"PK\x03\x04"):
        try:
            looks = "a text file" if head and b"\x00" not in head and head.decode("utf-8") \
                else "empty" if not head else "not a file that torch.save writes"
        except UnicodeDecodeError:
            looks = "not a file that torch.save writes"
        raise TrainingError(f"{path} is not a checkpoint: it is {looks}", NOT_A_CHECKPOINT)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:  # cut short: no directory at its end
        raise TrainingError(
            f"could not read checkpoint {path}: it is truncated or corrupt ({error})",
            "use another checkpoint (`--resume auto` picks the newest good one)") from None
    if not any(name.endswith("/data.pkl") for name in names):
        raise TrainingError(f"{path} is not a checkpoint: it is a zip archive of other files",
                            NOT_A_CHECKPOINT)


def check_is_checkpoint(state: Any, path: Path) -> None:
    """TrainingError unless the loaded `state` has what every checkpoint of this project has
    (weights by name, the model's config, the step), so no later step meets a missing key."""
    if not isinstance(state, dict):
        raise TrainingError(f"{path} is not a checkpoint written by this project (it holds a "
                            f"{type(state).__name__}, not a dict)", NOT_A_CHECKPOINT)
    keys = {k: v for k, v in CHECKPOINT_KEYS.items() if k != "model" or path.name != TRAINER_STATE}
    wrong = [key for key, kind in keys.items() if not isinstance(state.get(key), kind)]
    weights = state.get("model", {})
    if isinstance(weights, dict) and not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        wrong.append("model (weights by name)")
    if wrong:
        raise TrainingError(f"{path} is not a checkpoint written by this project: it has no "
                            f"valid {', '.join(wrong)}", NOT_A_CHECKPOINT)


def load_sharded_weights(path: Path, map_location: str | torch.device = "cpu"
                         ) -> dict[str, torch.Tensor]:
    """A sharded checkpoint's model weights, put together into whole tensors (a state_dict)."""
    return {key.removeprefix("model/"): tensor.to(map_location)
            for key, tensor in read_sharded(path, "model/").items()}


def read_sharded(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of a sharded checkpoint whose keys start with `prefix` ('model/' or
    'optimizer/'), whole, read in this one process whatever number of processes wrote them: DCP's
    index says each tensor's full shape and where its pieces are. No model needs to exist."""
    import torch.distributed.checkpoint as dcp

    try:
        index = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata
        tensors = {key: torch.empty(meta.size, dtype=meta.properties.dtype)
                   for key, meta in index.items() if key.startswith(prefix)}
        with one_process_is_fine():
            dcp.load(tensors, checkpoint_id=str(path), no_dist=True)
    except Exception as error:  # DCP reports a damaged folder in many ways
        raise TrainingError(
            f"could not read sharded checkpoint {path}: {str(error).splitlines()[0][:160]}",
            "use another checkpoint (`--resume auto` picks the newest good one)",
        ) from None
    return tensors


@contextlib.contextmanager
def one_process_is_fine() -> Iterator[None]:
    """DCP warns when it loads without a process group: here that is the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is .*single process")
        yield


# A training may be saving while eval, generate or chat look for a checkpoint: for a moment
# between the renames of a checkpoint and of its sidecar the two do not match, and rotation may
# delete a file just found. Readers take no lock; they look again, quietly, a few times first.
READ_ATTEMPTS, READ_RETRY_SECONDS = 5, 0.05


def _find_and_load(which: str, folder: str | Path, device: str | torch.device
                   ) -> tuple[Path, dict]:
    if which in ("auto", "best", "latest"):
        for _ in range(READ_ATTEMPTS - 1):
            skipped: list[tuple[Path, str]] = []
            try:
                path = find_checkpoint(which, folder, prefer="best", skipped=skipped)
                if not skipped:  # (a damaged one may be a save in progress: look again)
                    return path, load_checkpoint(path, map_location=device)
            except TrainingError:
                pass
            time.sleep(READ_RETRY_SECONDS)
    # The last try says what is wrong, and names each damaged checkpoint it passes over
    # (a corrupt best.pt: "Skipping checkpoints/best.pt: ...", then the newest step is used).
    path = find_checkpoint(which, folder, prefer="best")
    return path, load_checkpoint(path, map_location=device)


def load_trained_model(which: str = "auto", folder: str | Path = "checkpoints",
                       device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Find a checkpoint (best, else latest; or a path) and return (model in eval mode, info).

    info holds: path, step, tokens_seen, val_loss, val_bpb, metrics (dict), model_config
    (dict), config (dict), tokenizer_hash, imported_from (None unless `make import` wrote it);
    stage ('train' or 'finetune'), chat_template (the tuned model's, else None) and finetune (its
    base and data). A checkpoint with LoRA adapters (state["lora"], models/lora.py) comes back
    merged: a plain model.
    """
    from config import ModelConfig, available_architectures
    from models.build import build_model  # here, so checkpoint I/O does not need the models

    path, state = _find_and_load(which, folder, device)
    saved = state.get("model_config")
    architecture = saved.get("architecture", "gpt") if isinstance(saved, dict) else "gpt"
    if architecture not in available_architectures():
        raise TrainingError(
            f"{path} holds a {architecture} model, and this project has the code of "
            f"{' and '.join(available_architectures())} only",
            f"use it from the {architecture} project that trained it (each project has the code "
            "of its own architecture)")
    try:
        model_config = ModelConfig(**state["model_config"])
        model = build_model(model_config)
        if state.get("lora"):  # LoRA adapters (models/lora.py): wrap as trained, load, merge
            from models.lora import apply_lora, merge_lora

            apply_lora(model, **state["lora"])
            model.load_state_dict(state["model"])
            merge_lora(model)
        else:
            model.load_state_dict(state["model"])
    except ConfigurationError as error:  # its model_config holds impossible values
        raise TrainingError(f"{path} does not hold a model this project can build: "
                            f"{error.message}", NOT_A_CHECKPOINT) from None
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise TrainingError(
            f"{path} does not match this project's model code: {str(error).splitlines()[0]}",
            "it was written by a different version of models/; retrain, or restore that code",
        ) from None
    model.to(device).eval()
    metrics = state.get("metrics", {})
    info = {
        "path": str(path),
        "step": state.get("step", 0),
        "tokens_seen": state.get("tokens_seen", 0),
        "val_loss": metrics.get("val_loss"),
        "val_bpb": metrics.get("val_bpb"),
        "metrics": dict(metrics),  # every validation measure of the last evaluation
        "model_config": dataclasses.asdict(model_config),
        "config": state.get("config", {}),
        "tokenizer_hash": state.get("tokenizer_hash"),
        "imported_from": state.get("imported_from"),  # `make import`'s source, if it was one
        # A tuned checkpoint (make finetune): the chat template it was trained with, its base.
        "stage": state.get("stage", "train"),
        "chat_template": state.get("chat_template"),
        "finetune": state.get("finetune", {}),
    }
    return model, info
