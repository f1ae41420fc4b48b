"""What a run records: every event as a line of logs/metrics.jsonl (the history the dashboard,
compare and plugins read), the same numbers in TensorBoard's event files, and samples that leave
the run's randomness alone."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from test_training import StopAt  # SIGTERM at a step, as a pre-empted job gets

from config import load_config
from conftest import ARCHITECTURE, first_everyday, read_records

# What differs between two runs of the same steps: time and memory.
MEASURED = {"elapsed", "eta", "tokens_per_sec", "rss_mb", "gpu_mb", "started"}
# What each architecture's evaluation measures besides its loss (runtime/objectives.py).
VAL_METRICS = {"gpt": {"val_loss", "val_ppl", "val_bpb"},
               "bert": {"val_loss", "val_ppl", "val_mlm_accuracy"},
               "t5": {"val_loss", "val_ppl", "val_span_match"}}[ARCHITECTURE]


def train(*args: str, callbacks: list | None = None) -> int:
    from training.train import main

    return main(list(args), extra_callbacks=callbacks)


def of_type(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["type"] == kind]


def test_every_event_of_a_run_is_a_record(micro_project: Path) -> None:
    assert train() == 0
    records = read_records(micro_project)
    assert records[0]["type"] == "run" and records[-1]["type"] == "end"
    run = records[0]
    meta = json.loads((micro_project / "data" / "processed" / "meta.json").read_text())
    assert (run["architecture"], run["layers"], run["dim"], run["max_steps"]) == \
        (ARCHITECTURE, 2, 32, 20)
    assert run["train_tokens"] == meta["train_tokens"] and run["val_tokens"] == meta["val_tokens"]
    assert run["resumed"] is False and (run["processes"], run["parallelism"]) == (1, "none")
    assert run["device"].startswith("cpu") and run["precision"] == "fp32" and run["parameters"] > 0
    per_step = run["tokens_per_step"]  # 8 sequences of the objective's length (gpt: 32 tokens)
    assert per_step % 8 == 0 and per_step >= 8 * 20 and (per_step == 256 or ARCHITECTURE != "gpt")

    train_records = of_type(records, "train")
    assert [r["step"] for r in train_records] == [5, 10, 15, 20]
    assert [r["tokens"] for r in train_records] == [s * per_step for s in (5, 10, 15, 20)]
    assert all(r["rss_mb"] > 10 and r["eta"] >= 0 for r in train_records)
    assert train_records[-1]["eta"] == 0

    evals = of_type(records, "eval")
    assert [r["step"] for r in evals] == [10, 20]
    assert all(set(r) == {"type", "step", "best"} | VAL_METRICS for r in evals)
    samples = of_type(records, "sample")
    assert [r["step"] for r in samples] == [10, 20]
    prompt = load_config(micro_project / "llm.config.js").generation.prompt
    assert all(r["prompt"] == prompt and isinstance(r["text"], str) for r in samples)
    assert all(r["continues"] is (ARCHITECTURE == "gpt") for r in samples)

    saved = [(r["step"], r["kind"]) for r in of_type(records, "checkpoint")]
    assert (10, "step") in saved and (20, "step") in saved and (10, "best") in saved
    best = [r for r in of_type(records, "checkpoint") if r["kind"] == "best"]
    assert best[0]["val_loss"] == pytest.approx(evals[0]["val_loss"], abs=1e-6)
    assert (micro_project / best[-1]["path"]).exists()
    assert records[-1] == {"type": "end", "step": 20, "reason": "done",
                           "elapsed": records[-1]["elapsed"]}


def test_tensorboard_gets_the_same_numbers(micro_project: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert train() == 0
    records = read_records(micro_project)
    events = EventAccumulator(str(micro_project / "logs" / "tensorboard"),
                              size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    losses = {e.step: e.value for e in events.Scalars("train/loss")}
    assert losses == pytest.approx({r["step"]: r["loss"] for r in of_type(records, "train")},
                                   rel=1e-6)
    assert list(losses) == [5, 10, 15, 20]
    val = {e.step: e.value for e in events.Scalars("val/loss")}
    assert val == pytest.approx({r["step"]: r["val_loss"] for r in of_type(records, "eval")},
                                rel=1e-6)
    assert list(val) == [10, 20]
    assert {"train/lr", "train/tokens_per_sec"} | {f"val/{key[4:]}" for key in VAL_METRICS} \
        <= set(events.Tags()["scalars"])
    assert "samples/text_summary" in events.Tags()["tensors"]  # the sample generations


def test_a_resumed_run_records_the_same_history(micro_project: Path, tmp_path: Path) -> None:
    """Samples use their own random generator: with them on, a run stopped and resumed records
    exactly what an uninterrupted run does (plus its stop and its second start)."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(micro_project, other)
    assert train() == 0
    alone = [r for r in read_records(micro_project) if r["type"] not in ("run", "end")]

    os.chdir(other)
    assert train(callbacks=[StopAt(12)]) == 0
    assert read_records(other)[-1]["reason"] == "SIGTERM"
    assert train("--resume", "auto") == 0
    records = read_records(other)
    assert [(r["type"], r["step"]) for r in records if r["type"] in ("run", "end")] == [
        ("run", 0), ("end", 12), ("run", 12), ("end", 20)]
    assert [r["resumed"] for r in of_type(records, "run")] == [False, True]

    def without_measures(rs: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in MEASURED} for r in rs
                if r["type"] not in ("run", "end")]

    resumed = without_measures(records)
    # the stopped run saved step 12, which the uninterrupted run did not: leave that line out
    resumed = [r for r in resumed if (r["type"], r["step"], r.get("kind")) != ("checkpoint", 12,
                                                                                "step")]
    assert resumed == without_measures(alone)


def test_fresh_moves_the_old_tensorboard_files_aside(micro_project: Path) -> None:
    assert train("--training.max_steps", "10") == 0
    assert train("--training.max_steps", "10", "--fresh") == 0
    archived = list((micro_project / "checkpoints" / "previous").glob("*/tensorboard"))
    assert len(archived) == 1 and list(archived[0].iterdir())
    assert len(list((micro_project / "logs" / "tensorboard").iterdir())) == 1  # the new run's


def test_without_the_tensorboard_package_training_goes_on(micro_project: Path, monkeypatch,
                                                         capsys) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    assert train("--training.max_steps", "5") == 0
    assert "tensorboard package is not installed" in capsys.readouterr().err
    assert of_type(read_records(micro_project), "end")
    assert not (micro_project / "logs" / "tensorboard").exists()


def test_tensorboard_off_writes_no_event_files(micro_project: Path) -> None:
    assert train("--training.max_steps", "5", "--logging.tensorboard", "false") == 0
    assert not (micro_project / "logs" / "tensorboard").exists()


# Logging writes on a background thread a few times a second (LogWriter): a process that ends
# at once (a crash, a second Ctrl+C, sys.exit) right after logging still writes every record.
ENDS_AT_ONCE = """
import sys
from training.callbacks.logging import LoggingCallback

class Trainer:
    step = 0

trainer, logging = Trainer(), LoggingCallback("logs", tensorboard=True)
logging.on_train_begin(trainer)
for step in range(1, 201):
    logging.on_log(trainer, {"type": "train", "step": step, "loss": 1.0 / step})
{end}
"""


@pytest.mark.parametrize("end", first_everyday(["raise RuntimeError('a crash')",
                                                "raise KeyboardInterrupt", "sys.exit(3)"]),
                         ids=["crash", "ctrl-c", "exit"])
def test_no_record_is_lost_when_the_process_ends_at_once(tmp_path: Path, end: str) -> None:
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", ENDS_AT_ONCE.replace("{end}", end)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Exception in thread" not in result.stderr
    assert [r["step"] for r in read_records(tmp_path)] == list(range(1, 201))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "logs" / "tensorboard"), {"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 201))
