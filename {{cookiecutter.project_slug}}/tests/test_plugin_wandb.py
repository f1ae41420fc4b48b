"""The wandb plugin, offline (no key, no network): a real run, read back from its files.

wandb writes an offline run as a transaction log (run-<id>.wandb): LevelDB's log format (32 KiB
blocks of records, each a 7-byte header then a piece of a protobuf `Record`). read_offline_run
reads it with wandb's own protobuf classes, so the test sees what `wandb sync` would upload.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from conftest import read_records, run_project_module

pytest.importorskip("wandb")

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_offline_run(path: Path) -> list:
    """The protobuf records of an offline run's .wandb file."""
    from wandb.proto import wandb_internal_pb2

    data, pos, pieces, records = path.read_bytes(), HEADER, b"", []  # file header: ':W&B' + 3
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:
            break
        body, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        pieces = body if kind in (FULL, FIRST) else pieces + body
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
    return records


def history(records: list) -> list[dict]:
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key anywhere: mode 'auto' must choose offline by itself."""
    for name in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_an_offline_run_holds_config_metrics_and_samples(micro_project: Path, offline) -> None:
    # A real `make train` process: wandb's service finishes writing the run when it ends.
    result = run_project_module(micro_project, "training.train", "--plugins.enabled", "wandb")
    assert result.returncode == 0, result.stdout + result.stderr
    runs = list((micro_project / "logs" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, result.stdout
    assert f"wandb sync {runs[0].parent.relative_to(micro_project)}" in result.stdout

    records = read_offline_run(runs[0])
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.project == "create-llm" and run.run_group == "micro-llm"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["model"]["layers"] == 2 and config["training"]["max_steps"] == 20

    ours = read_records(micro_project)
    rows = history(records)
    train = {row["_step"]: row["train/loss"] for row in rows if "train/loss" in row}
    assert train == pytest.approx({r["step"]: r["loss"] for r in ours if r["type"] == "train"})
    val = {row["_step"]: row["val/loss"] for row in rows if "val/loss" in row}
    assert val == pytest.approx({r["step"]: r["val_loss"] for r in ours if r["type"] == "eval"})
    tables = [row for row in rows if row.get("samples/_type") == "table-file"]
    assert [row["samples/nrows"] for row in tables] == [1, 2]  # one sample per evaluation
    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            summary.update({i.key: json.loads(i.value_json) for i in record.summary.update})
    best = [r for r in ours if r["type"] == "checkpoint" and r["kind"] == "best"][-1]
    assert summary["best_val_loss"] == pytest.approx(best["val_loss"])


def test_auto_mode_is_online_only_with_a_key(offline, monkeypatch, tmp_path: Path) -> None:
    from plugins.wandb import resolve_mode

    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "y" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the user's own choice wins
    assert resolve_mode("auto") is None
    assert resolve_mode("offline") == "offline"
