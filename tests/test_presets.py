"""One set of numbers: cookiecutter.json's presets, create_llm_presets.py's shapes and parameter
counts (the wrapper and the template's Jinja use them), the generated project's models/presets.py,
and the real architecture's count, for every architecture (gpt, bert, t5); and the pre-gen hook
accepts exactly the sizes that the generated project's config.py accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, render_hook, rendered_context

from create_llm.presets import template_presets

COOKIECUTTER = json.loads((REPO_ROOT / "cookiecutter.json").read_text())
SHAPED = [name for name, preset in COOKIECUTTER["_presets"].items() if "layers" in preset]
MODELS = COOKIECUTTER["model"]
# One pytest-xdist worker runs this file (make test: --dist loadgroup), so each architecture's
# project below is baked and measured once.
pytestmark = pytest.mark.xdist_group("presets")
SENTINELS = {"gpt": 0, "bert": 0, "t5": 100}  # tokenizer.sentinel_tokens of each llm.config.js

# Custom answers (layers, heads, dim, vocab_size, max_length, tokenizer): legal and not, at and
# just past each limit.
CUSTOM_CASES = [
    (6, 6, 384, 8192, 256, "bpe"), (2, 5, 7, 8192, 256, "bpe"), (2, 4, 36, 8192, 256, "bpe"),
    (2, 4, 64, 100, 256, "bpe"), (2, 4, 64, 258, 256, "bpe"), (2, 4, 64, 259, 256, "bpe"),
    (2, 4, 64, 100, 256, "wordpiece"), (2, 4, 64, 63, 256, "unigram"),
    (2, 4, 64, 1 << 24, 256, "bpe"), (2, 4, 64, (1 << 24) + 1, 256, "bpe"),
    (2, 4, 64, 512, 4, "bpe"), (2, 4, 64, 512, 7, "bpe"), (2, 4, 64, 512, 8, "bpe"),
    (2, 4, 64, 512, 65536, "bpe"), (2, 4, 64, 512, 65537, "bpe"), (1024, 2, 64, 512, 64, "bpe"),
    (1025, 2, 64, 512, 64, "bpe"), (2, 1024, 2048, 512, 64, "bpe"),
    (2, 1026, 2052, 512, 64, "bpe"), (2, 2, 65536, 512, 64, "bpe"), (2, 2, 65540, 512, 64, "bpe"),
    # an odd head size (only gpt's RoPE needs an even one); vocabularies around t5's minimum
    # (5 special tokens and 100 sentinels: 361 for bpe, 164 for the others) and gpt's and bert's
    # (5 special tokens: 261)
    (2, 4, 36, 512, 64, "unigram"), (2, 4, 64, 360, 64, "bpe"), (2, 4, 64, 361, 64, "bpe"),
    (2, 4, 64, 163, 64, "wordpiece"), (2, 4, 64, 164, 64, "wordpiece"),
    (2, 4, 64, 260, 64, "bpe"), (2, 4, 64, 261, 64, "bpe"),
]

# Run inside a baked project: its presets, the meta-device counts, and which shapes its config
# accepts.
PROJECT_SCRIPT = """
import json, sys
from config import ModelConfig, TokenizerConfig, load_config
from errors import ConfigurationError
from models.presets import ARCHITECTURE, PRESETS, count_parameters, preset_config
shapes, cases, sentinels = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
def accepts(case):
    layers, heads, dim, vocab, length, tokenizer = case
    try:
        ModelConfig(architecture=ARCHITECTURE, layers=layers, heads=heads, kv_heads=heads,
                    dim=dim, max_length=length, mlp_dim=(dim * 8 // 3 + 31) // 32 * 32,
                    vocab_size=vocab)
        TokenizerConfig(type=tokenizer, vocab_size=vocab, sentinel_tokens=sentinels,
                        special_tokens=load_config("llm.config.js").tokenizer.special_tokens)
    except ConfigurationError:
        return False
    return True
shapes = [{k: v for k, v in shape.items()} for shape in shapes]
print(json.dumps({
    "architecture": ARCHITECTURE,
    "presets": PRESETS,
    "counts": {n: count_parameters(preset_config(n)) for n in PRESETS},
    "shape_counts": [count_parameters(ModelConfig(**shape)) for shape in shapes],
    "accepts": [accepts(case) for case in cases],
}))
"""


def custom_shape(case: tuple, model: str) -> dict:
    layers, heads, dim, vocab, length, _ = case
    answers = {**COOKIECUTTER, "preset": "custom", "model": model, "custom_layers": layers,
               "custom_heads": heads, "custom_dim": dim, "custom_vocab_size": vocab,
               "custom_max_length": length}
    return template_presets().model_shape(answers)


@pytest.fixture(scope="module", params=MODELS)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A baked nano project of each architecture: its presets, their real parameter counts
    (meta device), and which custom shapes its config accepts."""
    from cookiecutter.main import cookiecutter

    model = request.param
    out = tmp_path_factory.mktemp(f"presets-{model}")
    path = Path(cookiecutter(str(REPO_ROOT), no_input=True, output_dir=str(out),
                             extra_context={"preset": "nano", "project_name": "p",
                                            "model": model}))
    shapes = [custom_shape(case, model) for case in ((6, 6, 384, 8192, 256, "bpe"),
                                                     (3, 4, 96, 1000, 64, "bpe"),
                                                     (2, 2, 64, 300, 32, "unigram"))]
    result = subprocess.run([sys.executable, "-c", PROJECT_SCRIPT, json.dumps(shapes),
                             json.dumps(CUSTOM_CASES), str(SENTINELS[model])],
                            cwd=path, capture_output=True, text=True, check=True)
    return {**json.loads(result.stdout), "shapes": shapes, "model": model}


def test_the_project_has_exactly_the_template_presets(project: dict) -> None:
    presets = template_presets()
    assert project["architecture"] == project["model"]
    for name in SHAPED:
        values = presets.preset_values({**COOKIECUTTER, "preset": name, "model": project["model"]})
        shape = presets.model_shape({**COOKIECUTTER, "preset": name, "model": project["model"]})
        expected = {**values, **{k: v for k, v in shape.items() if k != "architecture"}}
        assert project["presets"][name] == expected
    assert list(project["presets"]) == SHAPED


@pytest.mark.parametrize("name", SHAPED)
def test_the_shown_parameter_count_is_the_real_one(project: dict, name: str) -> None:
    presets = template_presets()
    answers = {**COOKIECUTTER, "preset": name, "model": project["model"]}
    shape = presets.model_shape(answers)
    assert presets.parameter_count(shape) == project["counts"][name]
    target = presets.preset_values(answers)["target_params"]
    assert abs(project["counts"][name] - target) / target < 0.1  # ~1M, ~10M, ~100M, ~1B


def test_custom_shapes_count_right_too(project: dict) -> None:
    counts = [template_presets().parameter_count(shape) for shape in project["shapes"]]
    assert counts == project["shape_counts"] and counts


def test_the_hook_accepts_exactly_what_the_project_config_accepts(project: dict,
                                                                  tmp_path: Path) -> None:
    model = project["model"]
    hook = render_hook("pre_gen_project", rendered_context(model=model), tmp_path)
    for case, project_accepts in zip(CUSTOM_CASES, project["accepts"], strict=True):
        layers, heads, dim, vocab, length, tokenizer = case
        context = {**rendered_context(model=model), "preset": "custom", "tokenizer": tokenizer,
                   "custom_layers": layers, "custom_heads": heads, "custom_dim": dim,
                   "custom_vocab_size": vocab, "custom_max_length": length}
        try:
            hook.check_architecture(hook.architecture(context), tokenizer, model)
            hook_accepts = True
        except hook.AnswerError:
            hook_accepts = False
        assert hook_accepts == project_accepts, (model, case)
    assert any(project["accepts"]) and not all(project["accepts"])
