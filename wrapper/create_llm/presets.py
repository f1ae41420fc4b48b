"""The presets table of `create-llm --list-templates` and the size line of the summary.

The numbers are cookiecutter.json's `_presets`; the shapes and parameter counts come from the
template's own create_llm_presets.py (the module cookiecutter renders llm.config.js and README.md
with), loaded from the template folder, so the wrapper and the generated project cannot disagree.
"""

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from create_llm.template import find_template


@cache
def template_presets() -> ModuleType:
    """The template's create_llm_presets.py, loaded by path (it is not an installed module)."""
    path = Path(find_template()) / "create_llm_presets.py"
    spec = importlib.util.spec_from_file_location("create_llm_template_presets", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def describe(shape: dict[str, Any]) -> str:
    """One line a user can picture: '10.1M parameters (gpt, 6 layers, width 320, ...)'."""
    presets = template_presets()
    layers = (f"{shape['layers']} encoder + {shape['layers']} decoder layers"
              if shape.get("architecture") == "t5" else f"{shape['layers']} layers")
    return (
        f"{presets.format_count(presets.parameter_count(shape))} parameters "
        f"({shape.get('architecture', 'gpt')}, {layers}, width {shape['dim']}, {shape['heads']} "
        f"heads, context {shape['max_length']:,}, vocabulary {shape['vocab_size']:,})"
    )


TITLES = {"gpt": "gpt (decoder-only, writes text)", "bert": "bert (encoder-only, masked-LM)",
          "t5": "t5 (encoder-decoder, span corruption)"}


def presets_table(context: dict[str, Any], model: str = "gpt") -> Any:
    """A rich Table of every preset of one architecture, for `create-llm --list-templates`."""
    from rich.table import Table  # lazy: only this flag needs it

    presets = template_presets()
    table = Table(title=f"create-llm templates: --model {TITLES.get(model, model)}",
                  title_justify="left")
    table.add_column("template", no_wrap=True)
    table.add_column("parameters")
    table.add_column("layers x width", no_wrap=True)
    table.add_column("context", justify="right", no_wrap=True)
    table.add_column("CPU", no_wrap=True)
    table.add_column("hardware")
    table.add_column("expected training time")
    for preset in context["_presets"]:  # _presets is in size order
        answers = {**context, "preset": preset, "model": model}
        info, shape = presets.preset_values(answers), presets.model_shape(answers)
        count = presets.format_count(presets.parameter_count(shape))
        if preset == "custom":
            count = f"yours ({count} with the defaults)"
        layers = f"{shape['layers']}+{shape['layers']}" if model == "t5" else str(shape["layers"])
        table.add_row(
            preset, count, f"{layers} x {shape['dim']}", f"{shape['max_length']:,}",
            "yes" if info["runs_on_cpu"] else "no",
            f"{info['device']}; {info['min_ram_gb']} GB RAM or more", info["expected_time"],
        )
    return table
