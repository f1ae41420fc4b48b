"""Sharded checkpoints: how an FSDP run saves and restores a model that no process holds whole.

    checkpoints/step_000500.dcp/       one folder per checkpoint
        .metadata                      DCP's index: every tensor's shape and where its pieces are
        __0_0.distcp  __1_0.distcp     the tensors, one file per process: its shards of the
                                       weights and of AdamW's moments
        trainer.pt                     the rest, as in a single-file checkpoint: step, random
                                       states, data position, configs, optimizer settings
    checkpoints/step_000500.json       the sidecar: step, validation loss, each file's size and
                                       SHA-256 (checked before any load)
    checkpoints/best_000800.dcp/       the best model so far; best.json names it

Every process writes its own shards at once, with torch.distributed.checkpoint (DCP), into a
hidden temporary folder that rank 0 renames when all are done and then describes in the sidecar:
a half-written checkpoint is never found as "latest" or "best". DCP reshards on load, so a
checkpoint written by N processes resumes with M processes, FSDP or not (`make resume`, any
NPROC), bit for bit when M = N. The other direction works too: a single-file checkpoint (one
process or DDP) resumes under FSDP (load_full). For everything else (`make generate`, eval, chat,
compare, export), runtime/checkpoints.py reads the weights of a sharded checkpoint directly, and
`make consolidate` writes one ordinary .pt file (consolidate).

Unlike a .pt file, which loads with weights_only=True, DCP's index (.metadata) is a pickle:
load only sharded checkpoints that you made (share the consolidated .pt file instead).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from errors import TrainingError
from runtime import checkpoints
from runtime.distributed import World

# ---- one flat dict of tensors: what DCP writes ----
# "model/<name>" for each weight, "optimizer/<name>/<moment>" for AdamW's state of each weight.
# Keys with "/" can never be confused with the dots inside parameter names.


def _flatten(model_state: dict[str, Any], optimizer_state: dict[str, dict[str, Any]]
             ) -> dict[str, Any]:
    flat = {f"model/{name}": tensor for name, tensor in model_state.items()}
    for name, moments in optimizer_state.items():
        flat.update({f"optimizer/{name}/{key}": value for key, value in moments.items()})
    return flat


def _unflatten(flat: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    model_state: dict[str, Any] = {}
    optimizer_state: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        kind, _, rest = key.partition("/")
        if kind == "model":
            model_state[rest] = value
        else:
            name, _, moment = rest.rpartition("/")
            optimizer_state.setdefault(name, {})[moment] = value
    return model_state, optimizer_state


# ---- saving (every process of an FSDP run calls it at the same step) ----


def save_sharded(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 training_state: dict[str, Any], info: dict[str, Any], world: World) -> None:
    """Write a sharded checkpoint to `path` (a .dcp folder) and its sidecar; collective.

    training_state: the trainer's plain values (Trainer.training_state()); info: the sidecar's
    facts (Trainer.checkpoint_info()). A failure on any process is a TrainingError on all, and
    leaves the previous checkpoints untouched.
    """
    model_state, optimizer_state = get_state_dict(model, optimizer)  # this process's shards
    # One temporary folder for all: named by rank 0 (its process id, so that a killed run's
    # leftover is recognised and removed by the next one).
    temp = Path(world.broadcast(str(checkpoints.temp_path(path))))
    try:
        dcp.save(_flatten(model_state, optimizer_state["state"]), checkpoint_id=str(temp))
        if world.is_main:
            trainer_state = {**training_state,
                             "optimizer_param_groups": optimizer_state["param_groups"]}
            with open(temp / checkpoints.TRAINER_STATE, "wb") as f:
                torch.save(trainer_state, f)
                f.flush()
                os.fsync(f.fileno())
            _publish(temp, path, info, world.size)
    except Exception as error:  # DCP raises its own CheckpointException on every process
        if world.is_main:
            checkpoints.remove(temp)
        reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[-1][:160]
        raise TrainingError(
            f"could not write checkpoint {path}: {reason}",
            "free some disk space or make the checkpoints folder writable (checkpoints.dir in "
            "llm.config.js); earlier checkpoints are untouched",
        ) from None
    world.barrier()  # no process goes on before the checkpoint is in place


def _publish(temp: Path, path: Path, info: dict[str, Any], processes: int) -> None:
    """Rank 0, once every process has written its files: rename `temp` to `path`, then write the
    sidecar (a sharded checkpoint is only found once its sidecar lists its files)."""
    files = {}
    for file in sorted(temp.iterdir()):
        files[file.name] = {"size": file.stat().st_size, "sha256": checkpoints.file_sha256(file)}
    sidecar = {
        **info,
        "file": path.name,
        "sharded": True,
        "processes": processes,
        "files": files,
        "size": sum(facts["size"] for facts in files.values()),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "format_version": checkpoints.FORMAT_VERSION,
    }
    for file in temp.iterdir():
        checkpoints.fsync_path(file)
    old = None
    if path.exists():  # saved again at the same step: set the old one aside until replaced
        old = checkpoints.temp_path(path.with_name(path.name + "-old"))
        os.replace(path, old)
    os.replace(temp, path)
    checkpoints.write_sidecar(path, sidecar)
    if old is not None:
        checkpoints.remove(old)


# ---- loading into a training run ----


def load_sharded(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 param_groups: list[dict[str, Any]]) -> None:
    """Load a sharded checkpoint into the model and optimizer, FSDP or not, in any number of
    processes (DCP reads each process's part from whichever files hold it); collective.

    param_groups: the optimizer settings saved in its trainer.pt.
    """
    # The state dicts of the model and optimizer as they are now (this process's shards, or
    # whole tensors without FSDP) say what to read; DCP fills them in place.
    model_state, optimizer_state = get_state_dict(model, optimizer)
    flat = _flatten(model_state, optimizer_state["state"])
    try:
        with checkpoints.one_process_is_fine():  # resuming without FSDP, in one process
            dcp.load(flat, checkpoint_id=str(path))
    except Exception as error:
        raise TrainingError(
            f"could not read sharded checkpoint {path}: {str(error).splitlines()[0][:160]}",
            "use another checkpoint (`--resume auto` picks the newest good one)",
        ) from None
    model_state, moments = _unflatten(flat)
    set_state_dict(model, optimizer, model_state_dict=model_state,
                   optim_state_dict={"state": moments, "param_groups": param_groups})


def load_full(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any]) -> None:
    """Load a single-file checkpoint (one process or DDP) into an FSDP model: each process
    keeps its own shards of the whole tensors."""
    names = parameter_order(get_state_dict(model, optimizer)[1]["param_groups"])
    set_state_dict(model, optimizer, model_state_dict=model_state,
                   optim_state_dict=by_name(optimizer_state, names),
                   options=StateDictOptions(full_state_dict=True))


def load_full_weights(model: torch.nn.Module, model_state: dict[str, torch.Tensor]) -> None:
    """Whole weights (an imported model's) into an FSDP model, without optimizer state."""
    set_model_state_dict(model, model_state, options=StateDictOptions(full_state_dict=True))


# ---- optimizer state: by number (torch.optim's state_dict) or by name (DCP's) ----


def parameter_order(param_groups: list[dict[str, Any]]) -> list[str]:
    """Parameter names in the optimizer's order: torch.optim numbers them 0, 1, ... that way."""
    return [name for group in param_groups for name in group["params"]]


def by_name(optimizer_state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """torch.optim's state_dict (parameters numbered) -> keyed by parameter name."""
    return {"state": {names[i]: moments for i, moments in optimizer_state["state"].items()},
            "param_groups": [{**group, "params": [names[i] for i in group["params"]]}
                             for group in optimizer_state["param_groups"]]}


def by_number(moments: dict[str, Any], param_groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Keyed by parameter name -> torch.optim's state_dict (what a single file holds)."""
    names = parameter_order(param_groups)
    number = {name: i for i, name in enumerate(names)}
    return {"state": {number[name]: moments[name] for name in names if name in moments},
            "param_groups": [{**group, "params": [number[name] for name in group["params"]]}
                             for group in param_groups]}


# ---- one file from the shards: make consolidate ----


def consolidate(path: Path) -> dict[str, Any]:
    """A sharded checkpoint as the dict of a single-file checkpoint: model, optimizer and
    training state, whole. Runs in one process, whatever number of processes wrote it."""
    state = checkpoints.load_checkpoint(path)  # trainer.pt, and the weights put together
    _, moments = _unflatten(checkpoints.read_sharded(path, "optimizer/"))
    state["optimizer"] = by_number(moments, state.pop("optimizer_param_groups"))
    return state


def sidecar_facts(path: Path) -> dict[str, Any]:
    """The facts a sharded checkpoint's sidecar records about the run (step, losses, preset...),
    for the sidecar of its consolidated copy."""
    sidecar = json.loads(checkpoints.sidecar_path(path).read_text())
    return {key: value for key, value in sidecar.items()
            if key not in ("file", "sharded", "processes", "files", "size", "sha256",
                           "saved_at", "format_version")}
