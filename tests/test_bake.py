"""Bake the template with pytest-cookies and check what comes out.

Matrix: every preset x every architecture (they change llm.config.js and the file set), with the
tokenizer and license answers cycled through the rows, so the suite stays fast.

    .venv/bin/python -m pytest tests/test_bake.py -q
"""

import fnmatch
import itertools
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import (
    CACHE_DIRS,
    PROJECT_TEMPLATE,
    REPO_ROOT,
    cookiecutter_json,
    parse_llm_config,
    render_hook,
    rendered_context,
    tree_contents,
    tree_files,
)
from typer.testing import CliRunner

from create_llm import cli
from create_llm.presets import template_presets

TEMPLATE = cookiecutter_json()
PRESETS = TEMPLATE["preset"]
MODELS = TEMPLATE["model"]
TOKENIZERS = TEMPLATE["tokenizer"]
LICENSES = TEMPLATE["license"]
# Plugins are independent of the model: cycled through the rows, like the license.
PLUGINS = ["", "wandb", "huggingface,synthex", "wandb,huggingface,synthex", "synthex"]
ALL_PLUGINS = "wandb,huggingface,synthex"
MATRIX = [
    (preset, model, tokenizer, license, plugins)
    for (preset, model), tokenizer, license, plugins in zip(
        itertools.product(PRESETS, MODELS), itertools.cycle(TOKENIZERS),
        itertools.cycle(LICENSES), itertools.cycle(PLUGINS), strict=False)
]
# What each architecture's llm.config.js has that the others do not (config.py's ONLY_FOR).
# make finetune's section: gpt and t5 (an encoder is not tuned to chat).
FINETUNE_KEYS = {"data_dir", "base", "max_steps", "epochs", "batch_size", "gradient_accumulation",
                 "learning_rate", "min_lr", "warmup_steps", "weight_decay", "max_length",
                 "val_split", "length_warmup", "eval_interval", "eval_batches",
                 "builtin_conversations", "seed"}
LORA_KEYS = {"lora_rank", "lora_alpha"}  # gpt's projections (models/lora.py)
OWN_KEYS = {
    "gpt": {"model": {"kv_heads", "rope_theta", "tie_embeddings"}, "data": {"stride"},
            "generation": {"temperature", "top_p", "repetition_penalty", "max_new_tokens"},
            "deployment": {"gguf_type"}, "finetune": FINETUNE_KEYS | LORA_KEYS},
    "bert": {"objective": {"mask_probability"}},
    "t5": {"model": {"relative_attention_buckets", "relative_attention_max_distance"},
           "tokenizer": {"sentinel_tokens"}, "objective": {"noise_density", "mean_span_length"},
           "generation": {"temperature", "top_p", "repetition_penalty", "max_new_tokens"},
           "finetune": FINETUNE_KEYS},
}
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]  # make finetune's turns (gpt and t5)
SPECIAL_TOKENS = {"gpt": ["<|endoftext|>", "<|pad|>", "<|unk|>", *CHAT_TOKENS],
                  "bert": ["[SEP]", "[CLS]", "[MASK]", "[PAD]", "[UNK]"],
                  "t5": ["</s>", "<pad>", "<unk>", *CHAT_TOKENS]}
# Preset keys that describe the preset rather than set a value of llm.config.js.
HARDWARE_KEYS = {"min_ram_gb", "device", "runs_on_cpu", "expected_time", "target_params"}
LEFTOVER_MARKERS = ("{{", "}}", "{%", "%}")


def expected_files(context: dict, tmp_path: Path) -> set[str]:
    """The template tree, minus what the post-gen prune table removes, plus the answers file."""
    post = render_hook("post_gen_project", context, tmp_path)
    pruned = post.pruned_paths(context)
    files = {
        name for name in tree_files(PROJECT_TEMPLATE)
        if not any(name == p or name.startswith(p + "/") for p in pruned)
    }
    return files | {".cookiecutter.json"}


def rendered_text_files(project: Path) -> dict[str, str]:
    """Files cookiecutter rendered with Jinja (not those in _copy_without_render)."""
    copy_only = TEMPLATE.get("_copy_without_render", [])
    texts = {}
    for name in tree_files(project):
        if any(fnmatch.fnmatch(name, pattern) for pattern in copy_only):
            continue
        try:
            texts[name] = (project / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary files are copied, never rendered
    return texts


def bake(cookies, **extra):
    result = cookies.bake(extra_context=extra)
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    return result.project_path


@pytest.mark.parametrize("preset, model, tokenizer, license, plugins", MATRIX)
def test_bake_matrix(baked, tmp_path, preset, model, tokenizer, license, plugins):
    project = baked(preset=preset, model=model, tokenizer=tokenizer, license=license,
                   plugins=plugins)
    context = rendered_context(preset=preset, model=model, tokenizer=tokenizer, license=license,
                               plugins=plugins)

    # Exactly the expected files, and no tool cache copied from a template checkout.
    assert tree_files(project) == expected_files(context, tmp_path)
    assert not [p for p in project.rglob("*") if p.name in CACHE_DIRS]

    # Nothing left unrendered.
    for name, text in rendered_text_files(project).items():
        for marker in LEFTOVER_MARKERS:
            assert marker not in text, f"{marker!r} left in {name}"

    # Exactly the architecture's own code: no other model file, no chat for an encoder.
    files = tree_files(project)
    assert {f"models/architectures/{m}.py" for m in MODELS} & files == \
        {f"models/architectures/{model}.py"}
    assert ("chat.py" in files) == (model != "bert")
    assert ("exporters/gguf.py" in files) == (model == "gpt")
    assert ("importers/hf.py" in files) == ("models/lora.py" in files) == (model == "gpt")

    # llm.config.js parses and carries the preset's numbers for this architecture.
    config = parse_llm_config(project / "llm.config.js")
    # ... and reads as the user will edit it: each section opens on its own line, indented two
    # spaces, after one blank line (Jinja's whitespace control once glued `},checkpoints: {`).
    text = (project / "llm.config.js").read_text(encoding="utf-8")
    for name in config:
        assert re.search(rf"(\n\n|module\.exports = {{\n)  {name}: {{( +//[^\n]*)?\n", text), name
    assert "\n\n\n" not in text
    answers = {**TEMPLATE, "preset": preset, "model": model}
    arch = template_presets().model_shape(answers)
    section = config["model"]
    assert section["preset"] == preset and section["architecture"] == model
    for key in ("layers", "heads", "kv_heads", "dim", "mlp_dim", "max_length"):
        if key == "kv_heads" and model != "gpt":
            assert key not in section  # bert and t5: plain multi-head attention
            continue
        assert section[key] == arch[key], key
    assert config["tokenizer"]["type"] == template_presets().tokenizer_type(
        {"model": model, "tokenizer": tokenizer})
    assert config["tokenizer"]["vocab_size"] == arch["vocab_size"]
    assert config["tokenizer"]["special_tokens"] == SPECIAL_TOKENS[model]
    owners: dict[tuple[str, str], set[str]] = {}
    for owner, sections in OWN_KEYS.items():
        for name, keys in sections.items():
            for key in keys:
                owners.setdefault((name, key), set()).add(owner)
    for (name, key), who in owners.items():  # only the knobs that work for this architecture
        assert (key in config.get(name, {})) == (model in who), (model, name, key)
    if model == "t5":
        assert config["tokenizer"]["sentinel_tokens"] == 100
    numbers = template_presets().preset_values(answers)
    for key, value in numbers.items():
        if key in HARDWARE_KEYS or key in arch:
            continue
        # (finetune's keys share training's names but hold values of their own)
        sections = [name for name, section in config.items()
                    if key in section and name != "finetune"]
        assert len(sections) == 1, f"{key} should be in exactly one section, is in {sections}"
        assert config[sections[0]][key] == value, key

    # The plugins: their files, their settings, their packages, their commands.
    chosen = [name for name in plugins.split(",") if name]
    assert {p.stem for p in (project / "plugins").glob("*.py")} - {"__init__", "base",
                                                                   "manager"} == set(chosen)
    assert config["plugins"]["enabled"] == [name for name in chosen if name != "synthex"]
    for name in ("wandb", "huggingface", "synthex"):
        assert (name in config) == (name in chosen), name
    requirements = (project / "requirements.txt").read_text(encoding="utf-8")
    assert ("\nwandb>=" in requirements) == ("wandb" in chosen)
    makefile = (project / "Makefile").read_text(encoding="utf-8")
    assert ("\nsynthex: ##" in makefile) == ("synthex" in chosen)

    # The answers file replays.
    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    assert answers["cookiecutter"]["preset"] == preset
    assert not any(key.startswith("_") for key in answers["cookiecutter"])


def test_custom_sizes_reach_llm_config(cookies):
    sizes = {"custom_layers": 3, "custom_heads": 4, "custom_dim": 96, "custom_vocab_size": 1000,
             "custom_max_length": 64}
    project = bake(cookies, preset="custom", **sizes)
    model = parse_llm_config(project / "llm.config.js")["model"]
    arch = template_presets().model_shape({**TEMPLATE, **sizes, "preset": "custom"})
    assert (model["layers"], model["heads"], model["kv_heads"], model["dim"]) == (3, 4, 4, 96)
    assert model["mlp_dim"] == arch["mlp_dim"] == 256
    assert model["max_length"] == 64
    assert parse_llm_config(project / "llm.config.js")["tokenizer"]["vocab_size"] == 1000


def test_impossible_custom_sizes_stop_the_bake(cookies):
    result = cookies.bake(extra_context={"preset": "custom", "custom_dim": 100,
                                         "custom_heads": 6})
    assert result.exit_code != 0 and result.project_path is None


HOSTILE = "'''; import os; os.system('touch PWNED'); r''' \"\"\" \\ {0} %s"


@pytest.mark.parametrize("extra", [
    {"project_name": 'Ada\'s "Quoted" LLM', "project_slug": "adas-llm"},
    {"project_name": "Mön LLM 🦙 日本語", "project_slug": "mon-llm", "author": "Zoë Ünïcode"},
    {"project_name": "spaced name", "description": HOSTILE, "author": HOSTILE},
])
def test_unusual_names_render_safely(cookies, tmp_path, monkeypatch, extra):
    monkeypatch.chdir(tmp_path)
    project = bake(cookies, **extra)
    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    for key, value in extra.items():
        assert answers["cookiecutter"][key] == value
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert extra["project_name"] in readme
    parse_llm_config(project / "llm.config.js")
    if (project / "pyproject.toml").is_file():
        tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert not list(Path(tmp_path).rglob("PWNED")) and not list(project.rglob("PWNED"))


@pytest.mark.parametrize("extra", [
    {"project_name": "../escape"},
    {"project_name": "x", "project_slug": 'x"; import os; os.system("touch PWNED") #'},
    {"project_name": "Mön"},
    {"project_name": "two\nlines", "project_slug": "two-lines"},
])
def test_unusable_names_are_refused(cookies, tmp_path, monkeypatch, extra):
    monkeypatch.chdir(tmp_path)
    result = cookies.bake(extra_context=extra)
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "FailedHookException"
    # cookies bakes into tmp_path/cookies/bakeNN: '../escape' must not survive next to it.
    assert not list(tmp_path.rglob("escape")) and not list(tmp_path.rglob("PWNED"))


def test_answers_file_regenerates_the_same_project(cookies, tmp_path):
    from cookiecutter.main import cookiecutter

    project = bake(cookies, preset="nano", tokenizer="unigram", author="Ada",
                   project_name="Replay Me")
    again = cookiecutter(str(REPO_ROOT), replay=str(project / ".cookiecutter.json"),
                         output_dir=str(tmp_path / "again"))
    assert tree_contents(Path(again)) == tree_contents(project)


def test_plain_cookiecutter_and_create_llm_make_identical_projects(tmp_path, monkeypatch):
    plain, wrapped = tmp_path / "plain", tmp_path / "wrapped"
    subprocess.run([sys.executable, "-m", "cookiecutter", str(REPO_ROOT), "--no-input",
                    "preset=small", "plugins=wandb,synthex", "-o", str(plain)], check=True,
                   capture_output=True)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["my-llm", "--template", "small", "--plugins",
                                          "wandb,synthex", "--yes", "--skip-install", "--no-git",
                                          "-o", str(wrapped)])
    assert result.exit_code == 0, result.output
    assert tree_files(plain / "my-llm") == tree_files(wrapped / "my-llm")
    assert tree_contents(plain / "my-llm") == tree_contents(wrapped / "my-llm")


@pytest.mark.parametrize("plugins", ["", ALL_PLUGINS])
def test_baked_project_passes_its_own_ruff_check(baked, plugins):
    project = baked(preset="nano", plugins=plugins)
    ruff_check(project)


def ruff_check(project: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."],
                            cwd=project, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def project_tests(project: Path, command: list[str]) -> None:
    """Run the generated project's tests in `project` with this interpreter (whose venv has
    everything the project's requirements.txt and its optional tests ask for)."""
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
    assert result.returncode == 0, tail


# The generated suite's files `make test` runs in each architecture's project: gpt's whole suite
# (less what is marked slow, browser or distributed); bert and t5 what is theirs, since the rest
# is the same code for every architecture: their own test file (parity with transformers, the
# objective, generate, chat, export), training and resume, the bad-input catalogue, and t5's
# instruction tuning.
EVERYDAY_OF = {
    "gpt": [],
    "bert": ["tests/test_bert.py", "tests/test_training.py", "tests/test_bad_inputs.py"],
    "t5": ["tests/test_t5.py", "tests/test_training.py", "tests/test_bad_inputs.py",
           "tests/test_finetune.py"],
}
# What `make test-all` adds: the tests `make test` skips (the browser test, torchrun, the long
# training runs, the rest of the bad-input catalogue): gpt's all, and for bert and t5 those of
# their test file, the resume that equals an uninterrupted run and their architecture's bad
# inputs.
REST = "slow or browser or distributed"
REST_OF = {
    "gpt": [],
    **{model: [f"tests/test_{model}.py",
               "tests/test_training.py::test_resume_equals_an_uninterrupted_run",
               "tests/test_bad_inputs.py", "-k",
               f"test_{model} or resume_equals or architecture or mask or sentinel or {model}"]
       for model in MODELS if model != "gpt"},
}


@pytest.mark.parametrize("model", MODELS)
def test_baked_project_passes_its_everyday_tests(cookies, model):
    """`make test` in a nano project of each architecture with every plugin (their tests are in
    the project only when they are), on EVERYDAY_OF's files: it bakes, trains, resumes,
    generates, exports, imports and tunes, and meets the bad-input catalogue. And ruff, as
    `make lint` runs it."""
    project = bake(cookies, preset="nano", model=model, plugins=ALL_PLUGINS)
    ruff_check(project)
    project_tests(project, ["make", "test", f"PYTHON={sys.executable}",
                            f"TESTS={' '.join(EVERYDAY_OF[model]) or 'tests'}",
                            "ARGS=-p no:cacheprovider"])


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.distributed
@pytest.mark.parametrize("model", MODELS)
def test_baked_project_passes_the_rest_of_its_tests(cookies, model):
    """What `make test-all` runs in the project beyond `make test` (REST_OF), with -n auto and
    the slowest 20 listed."""
    project = bake(cookies, preset="nano", model=model, plugins=ALL_PLUGINS)
    project_tests(project, [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n",
                            "auto", "--dist", "loadfile", "--durations=20", "-m", REST,
                            *REST_OF[model]])
