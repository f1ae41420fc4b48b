"""Size presets: the architecture each one builds, its parameter count, and the presets table.

The numbers live in cookiecutter.json `_presets`; the parameter count is computed from them here,
never typed in by hand (a test checks these numbers against the generated llm.config.js).
"""

from typing import Any

ARCHITECTURE_KEYS = ("layers", "heads", "kv_heads", "dim", "mlp_dim", "max_length", "vocab_size")
CUSTOM_KEYS = ("layers", "heads", "dim", "vocab_size", "max_length")  # custom_<key> answers


def custom_mlp_dim(dim: int) -> int:
    """SwiGLU width for a custom model: 8/3 * dim rounded up to a multiple of 32, exactly as
    the template's llm.config.js computes it."""
    return (dim * 8 // 3 + 31) // 32 * 32


def architecture(preset: str, presets: dict[str, Any], answers: dict[str, Any]) -> dict[str, int]:
    """The model sizes a preset (or the custom_* answers for `custom`) gives."""
    if preset != "custom":
        return {key: int(presets[preset][key]) for key in ARCHITECTURE_KEYS}
    sizes = {key: int(answers[f"custom_{key}"]) for key in CUSTOM_KEYS}
    # llm.config.js gives custom models full multi-head attention and the rounded SwiGLU width.
    return {**sizes, "kv_heads": sizes["heads"], "mlp_dim": custom_mlp_dim(sizes["dim"])}


def parameter_count(arch: dict[str, int]) -> int:
    """Parameters of the Llama-style GPT: tied embeddings, per block q/k/v/o projections,
    SwiGLU (gate, up, down) and two RMSNorm weights, plus the final RMSNorm."""
    dim, heads, kv_heads = arch["dim"], arch["heads"], arch["kv_heads"]
    head_dim = dim // heads
    attention = dim * head_dim * (heads + 2 * kv_heads) + heads * head_dim * dim
    block = attention + 3 * dim * arch["mlp_dim"] + 2 * dim
    return arch["vocab_size"] * dim + arch["layers"] * block + dim


def format_count(n: int) -> str:
    """10059840 -> '10.1M'; 990453888 -> '990M'; 1.2e9 -> '1.2B'."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            value = n / size
            return f"{value:.1f}{suffix}" if value < 100 else f"{value:.0f}{suffix}"
    return str(n)


def describe(arch: dict[str, int]) -> str:
    """One line a user can picture: '10.1M parameters (6 layers, width 320, ...)'."""
    return (
        f"{format_count(parameter_count(arch))} parameters ({arch['layers']} layers, width "
        f"{arch['dim']}, {arch['heads']} heads, context {arch['max_length']:,}, "
        f"vocabulary {arch['vocab_size']:,})"
    )


def presets_table(context: dict[str, Any]) -> Any:
    """A rich Table of every preset, for `create-llm --list-templates`."""
    from rich.table import Table  # lazy: only this flag needs it

    presets = context["_presets"]
    table = Table(title="create-llm templates", title_justify="left")
    table.add_column("template", no_wrap=True)
    table.add_column("parameters")
    table.add_column("layers x width", no_wrap=True)
    table.add_column("context", justify="right", no_wrap=True)
    table.add_column("CPU", no_wrap=True)
    table.add_column("hardware")
    table.add_column("expected training time")
    for preset in presets:  # _presets is in size order
        info = presets[preset]
        arch = architecture(preset, presets, context)
        count = format_count(parameter_count(arch))
        shape = f"{arch['layers']} x {arch['dim']}"
        if preset == "custom":
            count = f"yours ({count} with the defaults)"
        table.add_row(
            preset, count, shape, f"{arch['max_length']:,}", "yes" if info["runs_on_cpu"] else "no",
            f"{info['device']}; {info['min_ram_gb']} GB RAM or more", info["expected_time"],
        )
    return table
