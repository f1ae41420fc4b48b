"""Compare trained models side by side: size, training, loss, bits per byte (or accuracy), speed,
generations.

    make compare ARGS=". ../other-llm"             # = python compare.py . ../other-llm
    python compare.py . checkpoints/step_000200.pt  # this project's best vs an earlier step
    python compare.py . ../other-llm --prompt "Once upon a time" --prompt "The king"
    python compare.py . ../other-llm --text my_text.txt --markdown compare.md --json compare.json

Each argument is a project folder (its best checkpoint, else its newest one, with its own
tokenizer) or a checkpoint file (with the tokenizer of the project folder it is in).

Every model is scored on the same text: the first project's validation split (decoded back to
text), or --text FILE. Each model re-tokenizes that text with its own tokenizer, so the loss per
token and perplexity are only comparable between models that share a tokenizer. Bits per byte
spreads the loss over the UTF-8 bytes of the same text, so it is fair across tokenizers: the
winner is the model with the lowest validation bits per byte (never the training loss).

bert and t5 models are scored by their own objective (runtime/objectives.py): the loss and
accuracy on the tokens hidden from them (masked-lm) or the spans cut out (span-corruption). Two
of them are ranked by that loss only when they share a tokenizer (then the same tokens are
hidden); models with different objectives are never ranked, since their losses measure different
tasks, but are shown side by side. Their "generations" fill in the prompt's [MASK] or
<extra_id_N> blanks (one is added at the end of a prompt without any).

Another project is read as data, never run: its llm.config.js is parsed (not executed), its
checkpoints are loaded with weights_only and this project's model code, its tokenizer.json and
logs/metrics.jsonl are read as files. A model of an architecture this project has no code for
is shown from its files alone (describe_from_files): its size, steps and the losses its own
training measured on its own validation data; it is not scored on the shared text, ranked, or
asked for generations, and the report says why.

The report: a table, the same prompts' generations side by side (fixed seed), and the loss
curves of every run (from its logs/metrics.jsonl) in one PNG; --markdown and --json write it all
to files.
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import dataclasses
import functools
import itertools
import json
import shutil
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from config import (
    ARCHITECTURES,
    Config,
    GenerationConfig,
    available_architectures,
    load_config,
    raise_argument_error,
)
from data.splits import load_split
from errors import ConfigurationError, DataError, TrainingError, run_cli
from runtime.checkpoints import (
    find_checkpoint,
    is_sharded,
    load_checkpoint,
    load_trained_model,
    model_folder,
)
from runtime.device import autocast, pick_device, pick_precision, set_threads
from runtime.objectives import Objective, objective_for, objective_name
from tokenizer.load import eot_id, load_tokenizer, tokenizer_hash, tokenizer_of

# ---- which models: project folders and checkpoint files ----


@dataclass
class Run:
    """One model to compare, and the project files that go with it."""

    label: str
    checkpoint: Path
    project: Path
    config: Config
    """The project's llm.config.js; its paths are relative to `project`."""

    def path(self, relative: str) -> Path:
        return self.project / relative

    @property
    def tokenizer_path(self) -> Path:
        return self.path(self.config.tokenizer.path)

    @property
    def metrics_path(self) -> Path:
        # A run archived by `make train ARGS=--fresh` keeps its metrics next to its checkpoints.
        beside = self.checkpoint.parent / "metrics.jsonl"
        return beside if beside.is_file() else self.path(self.config.logging.dir) / "metrics.jsonl"


def find_project(path: Path) -> Path | None:
    """The nearest folder at or above `path` that holds an llm.config.js."""
    for folder in [path, *path.parents]:
        if (folder / "llm.config.js").is_file():
            return folder
    return None


def resolve_run(argument: str) -> Run:
    """A project folder or a checkpoint file -> the checkpoint, its project and its config."""
    path = Path(argument).expanduser().resolve()
    if not path.exists():
        raise ConfigurationError(f"{argument} does not exist",
                                 "pass project folders or checkpoint (.pt) files")
    if path.is_dir() and not is_sharded(path):  # a project (a .dcp folder is a checkpoint)
        project = find_project(path)
        if project is None:
            raise ConfigurationError(
                f"{argument} is not a project folder (no llm.config.js in it or above it)",
                "pass the folder of a project made by create-llm, or a checkpoint file in one",
            )
        config = load_config(project / "llm.config.js", own_project=False)
        # A project's model: the tuned one (make finetune) when it has one, as make chat uses.
        folder = path if path != project else model_folder(project / config.checkpoints.dir)
        checkpoint = find_checkpoint("auto", folder, prefer="best")
        label = path.name if path == project else f"{project.name}/{path.name}"
        if path == project and folder.name == "finetune":
            label += " (tuned)"
        return Run(label, checkpoint.resolve(), project, config)
    project = find_project(path.parent) or _project_by_tokenizer(path)
    config = load_config(project / "llm.config.js", own_project=False)
    return Run(f"{project.name}/{path.stem}", path, project, config)


def _project_by_tokenizer(checkpoint: Path) -> Path:
    """For a checkpoint outside any project: this project, if it has the same tokenizer."""
    here = Path.cwd().resolve()
    try:
        state = load_checkpoint(checkpoint, weights=False, mmap=True)
        trained_with = state.get("tokenizer_hash")
        config = load_config(here / "llm.config.js", own_project=False)
        if trained_with and trained_with == tokenizer_hash(here / config.tokenizer.path):
            return here
    except Exception:  # any failure means "not this project": say so below
        pass
    raise DataError(
        f"cannot tell which tokenizer {checkpoint} was trained with: it is not inside a project "
        "folder, and this project's tokenizer is a different one",
        "pass its project folder instead, or put the checkpoint back into its project's "
        "checkpoints/ folder",
    )


def unique_labels(runs: list[Run], arguments: list[str]) -> None:
    """Two runs with the same label (two projects named my-llm): use what the user typed."""
    for run, argument in zip(runs, arguments, strict=True):
        if sum(r.label == run.label for r in runs) > 1:
            run.label = argument
    for i, run in enumerate(runs):  # the same argument twice
        if sum(r.label == run.label for r in runs[:i]):
            run.label = f"{run.label} ({i + 1})"


# ---- the text every model is scored on ----


@dataclass
class EvalText:
    documents: list[str]
    num_bytes: int
    source: str


def _truncate_utf8(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def text_from_validation(run: Run, max_bytes: int) -> EvalText:
    """The run's validation split, decoded back to text, document by document."""
    processed = run.path(run.config.data.processed_dir)
    if not (processed / "meta.json").exists():
        raise DataError(
            f"{run.label} has no prepared validation data ({processed / 'meta.json'} not found)",
            f"run `make data` in {run.project}, or give the text to score with --text FILE",
        )
    tokenizer = load_tokenizer(str(run.tokenizer_path))
    eot = eot_id(tokenizer, run.config.tokenizer)
    tokens = load_split(str(processed), "val")
    # A token is at least one byte of text, so this many tokens hold enough text.
    limit = len(tokens) if not max_bytes else min(len(tokens), 2 * max_bytes + 1)
    window = np.asarray(tokens[:limit])
    ends = np.flatnonzero(window == eot).tolist()
    if not ends or ends[-1] != len(window) - 1:
        ends.append(len(window))
    documents, total, start = [], 0, 0
    for end in ends:
        text = tokenizer.decode(window[start:end].tolist())
        start = end + 1
        if max_bytes and total + len(text.encode("utf-8")) > max_bytes:
            text = _truncate_utf8(text, max_bytes - total)
        if text:
            documents.append(text)
            total += len(text.encode("utf-8"))
        if max_bytes and total >= max_bytes:
            break
    return EvalText(documents, total, f"{run.label}'s validation split")


def text_from_file(path: str, max_bytes: int) -> EvalText:
    file = Path(path).expanduser()
    try:
        if not file.is_file():  # (a folder; a FIFO would wait for a writer forever)
            raise DataError(f"--text {path}: {'not a file' if file.exists() else 'file not found'}",
                            "pass a UTF-8 text file")
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"--text {path} is not UTF-8 text", "convert it to UTF-8") from None
    except OSError as error:  # unreadable, a name too long
        raise DataError(f"--text {path[:80]}: {error.strerror or error}",
                        "pass a UTF-8 text file") from None
    if max_bytes:
        text = _truncate_utf8(text, max_bytes)
    return EvalText([text], len(text.encode("utf-8")), str(file))


# ---- scoring one model ----


def score(model: torch.nn.Module, objective: Objective, tokenizer: Tokenizer, eot: int,
          text: EvalText, device: torch.device, precision: str) -> dict[str, Any]:
    """The model's objective's measures on the text, in its own tokens: gpt's loss, perplexity
    and bits per byte; bert's and t5's loss, perplexity and accuracy (runtime/objectives.py)."""
    ids: list[int] = []
    for encoding in tokenizer.encode_batch(text.documents, add_special_tokens=False):
        ids += encoding.ids + [eot]  # documents end with end-of-text, as in training data
    if len(ids) < 2:
        raise DataError(f"the text to score ({text.source}) is empty",
                        "give a longer text with --text FILE")
    tokens = np.asarray(ids, dtype=np.int64)
    metrics = objective.evaluate(model, tokens, 8, None, device,
                                 autocast_ctx=lambda: autocast(device, precision),
                                 text_size=(len(tokens), text.num_bytes))
    if metrics["scored_tokens"] == 0:
        raise DataError(f"no tokens could be scored in {text.source}",
                        "give a longer text with --text FILE")
    accuracy = metrics.get("val_mlm_accuracy", metrics.get("val_span_match"))
    return {"val_loss": metrics["val_loss"], "perplexity": metrics["val_ppl"],
            "bits_per_byte": metrics.get("val_bpb"), "accuracy": accuracy,
            "eval_tokens": len(tokens)}


def generate_samples(model: torch.nn.Module, tokenizer: Tokenizer, eot: int, prompts: list[str],
                     settings: GenerationConfig, seed: int) -> tuple[list[str], float]:
    """gpt: each prompt's continuation (the same seed for every model), and tokens per second."""
    from runtime.sampling import generate_tokens

    warm_up = dataclasses.replace(settings, max_new_tokens=4)
    list(generate_tokens(model, [eot], warm_up))  # outside the timing
    texts, count, seconds = [], 0, 0.0
    for prompt in prompts:
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False).ids or [eot]
        generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        new = list(generate_tokens(model, prompt_ids, settings, stop_ids=(eot,),
                                   generator=generator))
        seconds += time.perf_counter() - start
        count += len(new)
        # Decode prompt and continuation together: some decoders drop a leading space otherwise.
        before = tokenizer.decode(prompt_ids)
        full = tokenizer.decode(prompt_ids + new)
        texts.append(prompt + full[len(before):] if full.startswith(before) else full)
    return texts, count / max(seconds, 1e-9)


def fill_samples(model: torch.nn.Module, objective: Objective, prompts: list[str],
                 settings: GenerationConfig, seed: int) -> list[str]:
    """bert and t5: each prompt with its blanks filled in ([MASK], <extra_id_N>; a prompt
    without one gets one at its end)."""
    return [objective.sample(model, prompt, settings, torch.Generator().manual_seed(seed))
            for prompt in prompts]


def evaluate_run(run: Run, text: EvalText, prompts: list[str], settings: GenerationConfig,
                 seed: int, device: torch.device) -> dict[str, Any]:
    model, info = load_trained_model(str(run.checkpoint), run.checkpoint.parent, device)
    tokenizer, _ = tokenizer_of(run.checkpoint, info["tokenizer_hash"], run.tokenizer_path)
    eot = eot_id(tokenizer, run.config.tokenizer)
    precision = pick_precision("auto", device, model.config.dim)
    objective = objective_for(run.config, model.config, tokenizer)
    metrics = score(model, objective, tokenizer, eot, text, device, precision)
    speed = None
    if objective.continues_prompt:
        generations, speed = generate_samples(model, tokenizer, eot, prompts, settings, seed)
    else:
        generations = fill_samples(model, objective, prompts, settings, seed)
    result = {
        "label": run.label,
        "checkpoint": str(run.checkpoint),
        "project": str(run.project),
        "architecture": model.config.architecture,
        "objective": objective.name,
        "tokenizer": f"{run.config.tokenizer.type} {tokenizer.get_vocab_size()}",
        "tokenizer_hash": info["tokenizer_hash"],
        "parameters": model.num_parameters(),
        "steps": info["step"],
        "tokens_seen": info["tokens_seen"],
        **metrics,
        # A tuned model's share of held-out questions answered right, from its own tuning.
        "answer_accuracy": _float(info["metrics"].get("val_answer_accuracy")),
        "generation_tokens_per_sec": speed,
        "scored_here": True,  # on the shared text, by this project's code
        "generations": generations,
    }
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def describe_from_files(run: Run, state: dict[str, Any], prompts: list[str]) -> dict[str, Any]:
    """A model of an architecture this project has no code for: what its checkpoint (`state`,
    loaded with its tensors memory-mapped: only their shapes are read) says. Comparing never runs
    another project's code, and this project's code cannot run this model: so its losses are the
    ones its own training measured, on its own validation data, and it writes nothing here."""
    saved, metrics = state["model_config"], state.get("metrics") or {}
    architecture = str(saved.get("architecture", "gpt"))
    shapes = {(t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)): t.numel()
              for t in state["model"].values()}  # a tied embedding is one storage: counted once
    ours = " and ".join(available_architectures())
    why = (f"(no generations: it is a {architecture} model, and this project has the code of "
           f"{ours} only; comparing never runs another project's code. `make generate` in "
           f"{run.project} shows its own.)")
    accuracy = metrics.get("val_mlm_accuracy", metrics.get("val_span_match"))
    return {
        "label": run.label, "checkpoint": str(run.checkpoint), "project": str(run.project),
        "architecture": architecture,
        "objective": objective_name(architecture) if architecture in ARCHITECTURES else "?",
        "tokenizer": f"{run.config.tokenizer.type} {saved.get('vocab_size', '?')}",
        "tokenizer_hash": state.get("tokenizer_hash"), "parameters": sum(shapes.values()),
        "steps": state["step"], "tokens_seen": state.get("tokens_seen", 0),
        "val_loss": _float(metrics.get("val_loss")), "perplexity": _float(metrics.get("val_ppl")),
        "bits_per_byte": _float(metrics.get("val_bpb")), "accuracy": _float(accuracy),
        "answer_accuracy": _float(metrics.get("val_answer_accuracy")),
        "eval_tokens": None, "generation_tokens_per_sec": None,
        "scored_here": False,  # its own numbers, on its own validation data
        "generations": [why] * len(prompts),
    }


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


# ---- the report ----


def ranking(results: list[dict[str, Any]]) -> tuple[str | None, str]:
    """(the measure the models are ranked by, or None; why). gpt models: bits per byte on the
    shared text (comparable across tokenizers). bert or t5 models: the loss, but only when they
    share one tokenizer (then the same tokens are hidden from each). Models with different
    objectives are never ranked by loss: their losses measure different tasks."""
    if len(results) < 2:
        return None, "Only one model: nothing to compare it with."
    elsewhere = [r["label"] for r in results if not r.get("scored_here", True)]
    if elsewhere:
        return None, (f"Not ranked: {', '.join(elsewhere)} could not be scored on the same text "
                      "here (an architecture this project has no code for): its numbers (+) "
                      "are its own training's, on its own validation data; shown side by side.")
    objectives = sorted({r["objective"] for r in results})
    if len(objectives) > 1:
        return None, (f"Not ranked: these models learn different objectives "
                      f"({', '.join(objectives)}), so their losses measure different tasks and "
                      "no number here compares them; they are shown side by side.")
    if objectives[0] == "next-token":
        return "bits_per_byte", "validation bits per byte"
    if len({r["tokenizer_hash"] for r in results}) > 1:
        return None, (f"Not ranked: these {objectives[0]} models have different tokenizers, so "
                      "they hide different tokens of the text and their losses are not "
                      "comparable; they are shown side by side.")
    return "val_loss", f"validation {objectives[0]} loss"


def pick_winner(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best model by ranking()'s measure (lower is better), or None."""
    key, _ = ranking(results)
    return None if key is None else min(results, key=lambda r: r[key])


def _human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


COLUMNS = ["run", "parameters", "steps", "tokens seen", "tokenizer", "val loss", "perplexity",
           "bits/byte", "gen tok/s"]
# With bert or t5 models among them: what each learns, and its accuracy (masked tokens right,
# spans exactly right), before the speed.
OBJECTIVE_COLUMNS = [*COLUMNS[:1], "objective", *COLUMNS[1:-1], "accuracy", COLUMNS[-1]]
TEXT_COLUMNS = {"run", "tokenizer", "objective"}


def columns(results: list[dict[str, Any]]) -> list[str]:
    names = COLUMNS if all(r["objective"] == "next-token" for r in results) \
        else OBJECTIVE_COLUMNS
    if any(r.get("answer_accuracy") is not None for r in results):  # a tuned model among them
        names = [*names[:-1], "answers", names[-1]]
    return names


def _number(value: float | None, text: str) -> str:
    return "-" if value is None else text.format(value)


def table_rows(results: list[dict[str, Any]], winner: dict[str, Any] | None) -> list[list[str]]:
    rows = []
    for r in results:
        own = "" if r.get("scored_here", True) else "+"  # its own training's numbers
        cells = {"run": r["label"] + (" *" if r is winner else ""), "objective": r["objective"],
                 "parameters": _human(r["parameters"]), "steps": f"{r['steps']:,}",
                 "tokens seen": _human(r["tokens_seen"]), "tokenizer": r["tokenizer"],
                 "val loss": _number(r["val_loss"], "{:.4f}") + own * bool(
                     r["val_loss"] is not None),
                 "perplexity": _number(r["perplexity"], "{:.2f}") + own * bool(
                     r["perplexity"] is not None),
                 "bits/byte": _number(r["bits_per_byte"], "{:.4f}") + own * bool(
                     r["bits_per_byte"] is not None),
                 "accuracy": _number(r["accuracy"] and 100 * r["accuracy"], "{:.1f}%")
                 + own * bool(r["accuracy"] is not None),
                 # its tuning's own figure (held-out questions answered right): "+"
                 "answers": _number(r.get("answer_accuracy") and 100 * r["answer_accuracy"],
                                    "{:.1f}%+") if r.get("answer_accuracy") is not None else "-",
                 "gen tok/s": _number(r["generation_tokens_per_sec"], "{:,.0f}")}
        rows.append([cells[name] for name in columns(results)])
    return rows


def text_table(rows: list[list[str]], names: list[str] = COLUMNS) -> str:
    widths = [max(len(row[i]) for row in [names, *rows]) for i in range(len(names))]
    # Text columns to the left, numbers to the right.
    lines = []
    for row in [names, *rows]:
        cells = [c.ljust(w) if names[i] in TEXT_COLUMNS else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]], names: list[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(names) + " |",
             "|" + "|".join("---" if name in TEXT_COLUMNS else "---:" for name in names) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def winner_line(results: list[dict[str, Any]], winner: dict[str, Any] | None) -> str:
    return ranking_line(results, winner) + answers_note(results)


def answers_note(results: list[dict[str, Any]]) -> str:
    """What the answers column is, when there is one."""
    if not any(r.get("answer_accuracy") is not None for r in results):
        return ""
    return (" Answers (+): the share of held-out questions a tuned model answered with the "
            "right fact, measured by its own tuning (`make eval ARGS=--chat` measures it again).")


def ranking_line(results: list[dict[str, Any]], winner: dict[str, Any] | None) -> str:
    key, why = ranking(results)
    if key is None or winner is None:
        return why
    second = min((r for r in results if r is not winner), key=lambda r: r[key])
    best = f"{winner[key]:.4f}"
    if f"{second[key]:.4f}" == best:  # e.g. best.pt and the step file it copies
        return f"Winner (*): {winner['label']}, with {best} {why}, tied with {second['label']}."
    gap = second[key] - winner[key]
    return (f"Winner (*): {winner['label']}, with {best} {why} ({gap:.4f} less than "
            f"{second['label']}).")


def side_by_side(labels: list[str], texts: list[str], width: int) -> str:
    """Texts in columns when the terminal is wide enough, one after another otherwise."""
    gap = 3
    column = (width - gap * (len(texts) - 1)) // max(1, len(texts))
    if column < 28:
        return "\n\n".join(f"[{label}]\n{textwrap.indent(text, '  ')}"
                           for label, text in zip(labels, texts, strict=True))
    columns = []
    for label, text in zip(labels, texts, strict=True):
        lines = [label[:column], "-" * min(column, max(len(label), 8))]
        for paragraph in text.splitlines() or [""]:
            lines += textwrap.wrap(paragraph, column) or [""]
        columns.append(lines)
    rows = itertools.zip_longest(*columns, fillvalue="")
    return "\n".join((" " * gap).join(c.ljust(column) for c in row).rstrip() for row in rows)


def read_metrics(path: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, training loss) and (step, validation bits per byte; bert and t5, which have none:
    validation loss) from a metrics.jsonl."""
    train, val = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue  # a line cut short by a crash
        if not isinstance(record, dict) or _float(record.get("step")) is None:
            continue  # not a record of a run (another project's file is only data)
        loss, measure = _float(record.get("loss")), _float(record.get("val_bpb",
                                                                      record.get("val_loss")))
        if loss is not None:
            train.append((record["step"], loss))
        if measure is not None:
            val.append((record["step"], measure))
    return train, val


def plot_curves(runs: list[Run], path: Path, only_gpt: bool = True) -> list[str]:
    """Training loss and validation bits per byte of every run, in one PNG. Returns the labels
    of runs without logs."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, no display needed
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    missing = []
    for run in runs:
        if not run.metrics_path.is_file():  # (a FIFO would wait for a writer forever)
            missing.append(run.label)
            continue
        train, val = read_metrics(run.metrics_path)
        if train:
            left.plot(*zip(*train, strict=True), label=run.label)
        if val:
            right.plot(*zip(*val, strict=True), marker="o", markersize=3, label=run.label)
    left.set(title="training loss (nats per token)", xlabel="step", ylabel="loss")
    right.set(title="validation bits per byte (each run's own validation data)" if only_gpt else
              "validation: gpt bits per byte; bert, t5 loss (own data)", xlabel="step",
              ylabel="bits per byte" if only_gpt else "bits per byte / loss")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return missing


def markdown_report(results: list[dict[str, Any]], winner: dict[str, Any] | None,
                    text: EvalText, prompts: list[str], plot: Path | None,
                    markdown_path: Path) -> str:
    parts = ["# Model comparison", "",
             f"Scored on {text.num_bytes:,} bytes of {text.source}, re-tokenized by each model's "
             f"own tokenizer. {how_to_read(results)}", "",
             markdown_table(table_rows(results, winner), columns(results)), "",
             winner_line(results, winner), ""]
    if plot is not None:
        try:
            relative = plot.resolve().relative_to(markdown_path.resolve().parent)
        except ValueError:
            relative = plot.resolve()
        parts += [f"![loss curves]({relative.as_posix()})", ""]
    for i, prompt in enumerate(prompts):
        parts += [f"## Prompt: {prompt}", ""]
        for r in results:
            quoted = "\n".join(f"> {line}" for line in r["generations"][i].splitlines())
            parts += [f"**{r['label']}**", "", quoted or ">", ""]
    return "\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python compare.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="project folders and/or checkpoint files")
    parser.add_argument("--text", metavar="FILE",
                        help="score every model on this text (default: the first project's "
                             "validation split)")
    parser.add_argument("--max-bytes", type=int, default=500_000,
                        help="score at most this many bytes of text (0 = all; default 500000)")
    parser.add_argument("--prompt", action="append", metavar="TEXT",
                        help="a prompt to generate from (repeat for more; default: "
                             "generation.prompt of the first project)")
    parser.add_argument("--max-new-tokens", type=int, default=60,
                        help="tokens generated per prompt (default 60)")
    parser.add_argument("--temperature", type=float,
                        help="default: generation.temperature of the first project")
    parser.add_argument("--seed", type=int, default=1337,
                        help="sampling seed, the same for every model (default 1337)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'mps'")
    parser.add_argument("--plot", default="logs/compare.png", metavar="FILE",
                        help="loss-curve PNG (default logs/compare.png)")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the loss curves")
    parser.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.error = functools.partial(raise_argument_error, parser)  # type: ignore[method-assign]
    return parser


def score_runs(runs: list[Run], text: EvalText, prompts: list[str],
               settings: GenerationConfig, seed: int, device_name: str) -> list[dict[str, Any]]:
    """evaluate_run for every run, one at a time (only one model is in memory at once)."""
    device = pick_device(device_name)
    if device.type == "cpu":
        set_threads(runs[0].config.training.threads)
    print(f"Scoring {len(runs)} models on {text.num_bytes:,} bytes of {text.source} "
          f"({device.type})", file=sys.stderr)
    results = []
    for i, run in enumerate(runs, 1):
        print(f"  [{i}/{len(runs)}] {run.label}: {run.checkpoint}", file=sys.stderr, flush=True)
        try:
            state = load_checkpoint(run.checkpoint, mmap=True)  # (its "is this ours?" check)
            architecture = state["model_config"].get("architecture", "gpt")
            if architecture in available_architectures():
                del state  # evaluate_run loads it into this project's model
                results.append(evaluate_run(run, text, prompts, settings, seed, device))
            else:  # read as data: never another project's code
                results.append(describe_from_files(run, state, prompts))
        except TrainingError as error:  # name the run the problem belongs to
            raise TrainingError(f"{run.label}: {error.message}", error.suggestion) from None
    return results


def print_comparison(results: list[dict[str, Any]], winner: dict[str, Any] | None,
                     prompts: list[str], temperature: float, seed: int) -> None:
    print()
    print(text_table(table_rows(results, winner), columns(results)))
    print()
    print(winner_line(results, winner))
    print(how_to_read(results))
    width = shutil.get_terminal_size((120, 24)).columns
    labels = [r["label"] for r in results]
    for i, prompt in enumerate(prompts):
        print(f"\n=== Prompt: {prompt!r} (seed {seed}, temperature {temperature}) ===\n")
        print(side_by_side(labels, [r["generations"][i] for r in results], width))


def how_to_read(results: list[dict[str, Any]]) -> str:
    text = ("Loss and perplexity are per token of each model's own tokenizer; bits per byte is "
            "measured on the same bytes, so it is the fair comparison.")
    if all(r["objective"] == "next-token" for r in results):
        return text
    return (text + " bert's loss and accuracy are on its hidden tokens (masked-lm), t5's on the "
            "spans cut out of the text (span-corruption): each objective's own measures.")


def write_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"Wrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.runs:
        raise ConfigurationError("no models to compare",
                                 "name project folders or checkpoints, e.g. "
                                 "`python compare.py . ../other-llm` "
                                 "(make compare ARGS=\". ../other-llm\")")
    if args.max_bytes < 0:
        raise ConfigurationError("--max-bytes must be >= 0", "e.g. --max-bytes 500000")

    runs = [resolve_run(argument) for argument in args.runs]
    unique_labels(runs, args.runs)
    first = runs[0].config.generation
    prompts = args.prompt or [first.prompt]
    temperature = first.temperature if args.temperature is None else args.temperature
    settings = dataclasses.replace(first, max_new_tokens=args.max_new_tokens,
                                   temperature=temperature)
    text = (text_from_file(args.text, args.max_bytes) if args.text
            else text_from_validation(runs[0], args.max_bytes))
    results = score_runs(runs, text, prompts, settings, args.seed, args.device)
    winner = pick_winner(results)
    print_comparison(results, winner, prompts, settings.temperature, args.seed)

    plot = None
    if not args.no_plot:
        plot = Path(args.plot)
        missing = plot_curves(runs, plot, all(r["objective"] == "next-token" for r in results))
        print(f"\nLoss curves: {plot}")
        if missing:
            print(f"(no metrics.jsonl for {', '.join(missing)}: not in the plot)")
    if args.markdown:
        path = Path(args.markdown)
        write_file(path, markdown_report(results, winner, text, prompts, plot, path))
    if args.json:
        sampling = {key: getattr(settings, key)
                    for key in ("temperature", "top_k", "top_p", "repetition_penalty")}
        report = {"text": {"source": text.source, "bytes": text.num_bytes,
                           "documents": len(text.documents)},
                  "prompts": prompts, "seed": args.seed, "sampling": sampling,
                  "max_new_tokens": args.max_new_tokens, "runs": results,
                  "winner": winner["label"] if winner else None,
                  "plot": str(plot) if plot else None}
        write_file(Path(args.json), json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main)
