"""The policy of one run's checkpoints folder: what a new run may do with what is already there.

    folder = CheckpointFolder("checkpoints", "logs", world)
    folder.prepare(resume=False, fresh=False)   # refuse to overwrite a run; --fresh moves it aside
    path = folder.resume_point("auto")          # the checkpoint to continue from (verified)
    folder.set_aside_later(step)                # resuming from an older step: later files aside
    folder.best_val_loss()                      # what a new best.pt must beat

`make train` uses checkpoints/ and logs/; `make finetune` uses its own pair
(checkpoints/finetune/, logs/finetune/) through this same class. How a single file is written,
verified and loaded is runtime/checkpoints.py; this module decides which files.

The rules, which protect whatever a user keeps near the checkpoints:
- Nothing is deleted. An earlier run, or the part of a run after the step a resume starts from,
  is moved to <folder>/previous/<date-time>/.
- Only what a training run writes is ever moved: step_N.pt/.dcp, best.pt/best_N.dcp, their .json
  sidecars, the tokenizer copies (tokenizer-<hash>.json), the run's logs (metrics.jsonl,
  tensorboard/), and the run folders of later stages made from it (finetune/). Any other file or
  folder in the checkpoints folder stays where it is.
- The folder itself is checked by config.py (checkpoints.dir may not be the project folder, or
  hold or sit inside its data, tokenizer or logs), so these moves never reach the project's own
  files.

With several processes (torchrun) rank 0 alone looks at and moves files; the others wait at a
barrier and take its answers.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from pathlib import Path

from errors import TrainingError
from runtime import checkpoints, distributed
from runtime.distributed import World

# What a training run writes into its checkpoints folder (and nothing else is ever moved).
RUN_FILE = re.compile(r"^(step_\d+\.(pt|json|dcp)|best\.(pt|json)|best_\d+\.dcp|"
                      r"tokenizer-[0-9a-f]+\.json)$")
# ... and into its logs folder.
RUN_LOGS = ("metrics.jsonl", "tensorboard")
# Later stages keep their own run folders inside the run's (training/finetune.py): they are made
# from this run's model, so they move aside with it.
STAGES = ("finetune",)


class CheckpointFolder:
    def __init__(self, path: str | Path, logs: str | Path,
                 world: World = distributed.ONE_PROCESS) -> None:
        self.path = Path(path)
        self.logs = Path(logs)
        self.world = world

    # ---- what is there ----

    def has_run(self) -> bool:
        """Whether a run has saved anything here (usable or not)."""
        return checkpoints.has_checkpoints(self.path)

    def run_files(self) -> list[Path]:
        """The files and sharded folders here that a training run wrote."""
        if not self.path.is_dir():
            return []
        return sorted(path for path in self.path.iterdir() if RUN_FILE.match(path.name)
                      and (path.is_file() or checkpoints.is_sharded(path))
                      and not path.is_symlink())

    def imported_start(self) -> Path | None:
        """The imported checkpoint (`make import`: step 0, no optimizer) when it is the only
        step checkpoint here: a new run then continues from its weights."""
        steps = checkpoints.list_step_checkpoints(self.path)
        if len(steps) != 1 or steps[0][0] != 0:
            return None
        info = checkpoints.read_sidecar(steps[0][1]) or {}
        return steps[0][1] if info.get("imported_from") else None

    def best_val_loss(self) -> float:
        """The validation loss of best.pt (inf if none or not measured): a resumed run replaces
        best.pt only with a better model, even when it branches from an older step."""
        info = checkpoints.read_sidecar(self.path / "best.pt")  # best.json, either kind of best
        loss = (info or {}).get("val_loss")
        return loss if isinstance(loss, (int, float)) else math.inf

    # ---- before a run ----

    def prepare(self, resume: bool, fresh: bool) -> None:
        """Never overwrite a previous run by accident: refuse, or (fresh) move it aside; check
        that the folder is writable and clear what an interrupted save left."""
        has_run = self.has_run() and (fresh or self.imported_start() is None)
        if has_run and not resume and not fresh:
            latest = checkpoints.list_step_checkpoints(self.path)
            where = f" (up to step {latest[-1][0]})" if latest else ""
            raise TrainingError(
                f"{self.path}/ already holds a training run{where}",
                "continue it with `make resume`, or start over with "
                f"`make train ARGS=--fresh` (the old run is moved to {self.path}/previous/)",
            )
        if self.world.is_main:  # files are moved once, by rank 0, while the others wait
            if has_run and not resume:
                print(f"Moved the previous run to {self.archive_run()}")
            checkpoints.check_writable(self.path)
            leftovers = checkpoints.remove_stale_temp_files(self.path)
            if leftovers:
                print(f"Removed {len(leftovers)} half-written checkpoint file(s) of an "
                      "interrupted run")
        self.world.barrier()

    def archive_run(self) -> Path:
        """Move the run's files and logs to previous/<date-time>/ (never delete a user's work)."""
        archive = self._new_archive()
        for path in self.run_files():
            shutil.move(str(path), archive / path.name)
        for name in RUN_LOGS:
            logged = self.logs / name
            if logged.exists() and not logged.is_symlink():
                shutil.move(str(logged), archive / name)
        for stage in STAGES:
            if CheckpointFolder(self.path / stage, self.logs / stage).has_run():
                shutil.move(str(self.path / stage), archive / stage)
                if (self.logs / stage).is_dir():
                    shutil.move(str(self.logs / stage), archive / f"{stage}-logs")
        return archive

    # ---- resuming ----

    def resume_point(self, which: str) -> Path:
        """The checkpoint to resume from: 'auto' = the newest good one (else best), or a path.
        Rank 0 finds and verifies it (reading every byte once); the others take its word."""
        found = checkpoints.find_checkpoint(which, self.path, prefer="latest") \
            if self.world.is_main else ""
        return Path(str(self.world.broadcast(str(found))))

    def set_aside_later(self, step: int) -> Path | None:
        """Resuming from an older checkpoint starts a branch of the run. Move the step
        checkpoints made after `step`, and a copy of metrics.jsonl, to previous/, so the branch
        can never overwrite them (best.pt stays: see best_val_loss). None when nothing is later.

        Collective: every process calls it after reading its checkpoint; rank 0 moves."""
        self.world.barrier()  # everyone has read the checkpoint before rank 0 moves later ones
        archive = self._set_aside_later(step) if self.world.is_main else None
        self.world.barrier()
        return archive

    def _set_aside_later(self, step: int) -> Path | None:
        later = [path for saved, path in checkpoints.list_step_checkpoints(self.path)
                 if saved > step]
        if not later:
            return None
        archive = self._new_archive(f"-after-step-{step}")
        for path in later:
            for part in (path, checkpoints.sidecar_path(path)):
                if part.exists():
                    shutil.move(str(part), archive / part.name)
        metrics = self.logs / "metrics.jsonl"
        if metrics.is_file():
            shutil.copy2(metrics, archive / "metrics.jsonl")  # the working copy is cut at `step`
        print(f"This run had gone on past step {step}: moved "
              f"{', '.join(p.name for p in later)} and a copy of {metrics} to {archive}/ "
              "(nothing is deleted)")
        return archive

    def _new_archive(self, suffix: str = "") -> Path:
        """A new, empty previous/<date-time><suffix>/ folder."""
        stamp = time.strftime("%Y%m%d-%H%M%S") + suffix
        archive, n = self.path / "previous" / stamp, 1
        while archive.exists():  # two archives in one second
            n += 1
            archive = self.path / "previous" / f"{stamp}-{n}"
        archive.mkdir(parents=True)
        return archive
