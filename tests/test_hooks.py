"""The hooks, rendered with Jinja as cookiecutter renders them and imported as modules.

    .venv/bin/python -m pytest tests/test_hooks.py -q
"""

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from conftest import (
    PROJECT_TEMPLATE,
    cookiecutter_json,
    makefile_targets,
    printed_commands,
    render_hook,
    rendered_context,
    tree_files,
)

from create_llm import cli, names


@pytest.fixture
def pre(tmp_path):
    return render_hook("pre_gen_project", rendered_context(), tmp_path)


@pytest.fixture
def post(tmp_path):
    return render_hook("post_gen_project", rendered_context(), tmp_path)


# ---- pre_gen_project: what it accepts and refuses ----

def test_choices_agree_with_cookiecutter_json(pre):
    template = cookiecutter_json()
    for key, choices in pre.CHOICES.items():
        assert set(choices) == set(template[key]), key
    # The wrapper's flag choices too (typer needs them before cookiecutter.json is read).
    assert set(typing.get_args(cli.PresetName)) == set(template["preset"])
    assert set(typing.get_args(cli.ModelName)) == set(template["model"])
    assert set(typing.get_args(cli.TokenizerName)) == set(template["tokenizer"])


@pytest.mark.parametrize("preset", cookiecutter_json()["preset"])
def test_every_preset_and_the_defaults_pass(pre, preset):
    pre.validate(rendered_context(preset=preset))


@pytest.mark.parametrize("slug", [
    "", ".", "..", "../x", "a/b", "a\\b", "My-LLM", "my llm", 'my"llm', "my'llm", "mön",
    "1llm", "-llm", "_llm", "x" * 65, "llm;rm -rf", "llm\n",
])
def test_bad_folder_names_are_refused(pre, slug):
    with pytest.raises(pre.AnswerError):
        pre.check_slug(slug)


@pytest.mark.parametrize("slug", ["my-llm", "llm_2", "a", "x" * 64])
def test_good_folder_names_pass(pre, slug):
    pre.check_slug(slug)


@pytest.mark.parametrize("slug", [
    "", "..", "../x", "a/b", "My-LLM", "my llm", 'a"b', "mön", "1a", "-a", "x" * 65,
    "my-llm", "llm_2", "a", "x" * 64,
])
def test_wrapper_and_hook_agree_on_folder_names(pre, slug):
    try:
        pre.check_slug(slug)
        hook_ok = True
    except pre.AnswerError:
        hook_ok = False
    assert hook_ok == (names.slug_problem(slug) is None)


@pytest.mark.parametrize("name", ["my-llm", "My LLM", "  Spaced Out ", "snake_case_name", "Mön"])
def test_wrapper_derives_the_slug_like_cookiecutter_json(name):
    assert rendered_context(project_name=name)["project_slug"] == names.derive_slug(name)


@pytest.mark.parametrize("sizes, fragment", [
    ({"custom_dim": 100, "custom_heads": 6}, "not divisible by heads"),
    ({"custom_dim": 96, "custom_heads": 32}, "is odd"),
    ({"custom_layers": 0}, "positive whole number"),
    ({"custom_heads": -2}, "positive whole number"),
    ({"custom_layers": "many"}, "positive whole number"),
    ({"custom_max_length": 4}, "max_length 4"),
    ({"custom_max_length": 1_000_000}, "max_length 1000000"),
    ({"custom_vocab_size": 100}, "vocab_size 100"),
    ({"custom_dim": 70_000, "custom_heads": 1}, "dim 70000 is more than"),
])
def test_impossible_custom_sizes_are_refused(pre, sizes, fragment):
    context = {**rendered_context(preset="custom"), **sizes}
    with pytest.raises(pre.AnswerError) as caught:
        pre.validate(context)
    assert fragment in caught.value.message
    assert caught.value.suggestion


def test_custom_sizes_given_as_text_are_read_as_numbers(pre):
    # Command-line answers arrive as text; cookiecutter renders every value to a string anyway.
    context = rendered_context(preset="custom", custom_dim="512", custom_heads="8")
    assert pre.architecture(context)["dim"] == 512
    pre.validate(context)


def test_kv_heads_must_divide_heads(pre):
    context = rendered_context(preset="tiny")
    context["_presets"] = json.loads(json.dumps(context["_presets"]))
    context["_presets"]["tiny"]["kv_heads"] = 2  # tiny has 5 heads
    with pytest.raises(pre.AnswerError, match="kv_heads 2 does not divide heads 5"):
        pre.validate(context)


def test_model_choice_is_checked(pre):
    with pytest.raises(pre.AnswerError, match="not a valid model"):
        pre.validate({**rendered_context(), "model": "lstm"})


@pytest.mark.parametrize("key", ["project_name", "description", "author"])
def test_free_text_stays_on_one_line(pre, key):
    with pytest.raises(pre.AnswerError, match="line break"):
        pre.validate({**rendered_context(), key: "first\nsecond"})


@pytest.mark.parametrize("value, fragment", [
    ("wandbb", "'wandbb' is not a plugin"),
    ("wandb,wandb", "names one twice"),
    (["wandb"], "must be text"),
])
def test_plugins_are_checked(pre, value, fragment):
    context = rendered_context()
    context["plugins"] = value
    with pytest.raises(pre.AnswerError, match=fragment):
        pre.validate(context)
    assert set(pre.PLUGINS) == set(cookiecutter_json()["_plugins"]) == set(PLUGIN_FILES)
    pre.validate(rendered_context(plugins=" huggingface , synthex "))


def test_free_text_may_hold_quotes_and_unicode(pre):
    pre.validate(rendered_context(project_name='Ada\'s "Mön" LLM 🦙', project_slug="adas-llm",
                                  description="it's a \"test\" ''' \\ done", author="Zoë"))


def test_rendering_keeps_hostile_answers_as_data(tmp_path):
    """Quotes, triple quotes and backslashes cannot break out of the JSON string literal."""
    hostile = "'''; import os; os.system('touch pwned'); x = r'''\\\" \\u0027"
    context = rendered_context(description=hostile, author='"""\\')
    module = render_hook("pre_gen_project", context, tmp_path)
    assert module.CONTEXT["description"] == hostile
    assert module.CONTEXT["author"] == '"""\\'
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def run_hook_script(module, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, module.__file__], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **env}, check=False)


def test_refusal_is_one_line_on_stderr_for_plain_cookiecutter(tmp_path):
    module = render_hook("pre_gen_project", rendered_context(preset="custom", custom_dim=100),
                         tmp_path)
    result = run_hook_script(module, tmp_path, {})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: dim 100 is not divisible")
    assert result.stdout == ""


def test_refusal_goes_to_the_error_file_for_the_wrapper(tmp_path):
    module = render_hook("pre_gen_project", rendered_context(preset="custom", custom_dim=100),
                         tmp_path)
    error_file = tmp_path / "error.json"
    result = run_hook_script(module, tmp_path, {"CREATE_LLM_ERROR_FILE": str(error_file)})
    assert result.returncode == 1 and result.stderr == ""
    reported = json.loads(error_file.read_text(encoding="utf-8"))
    assert reported["message"].startswith("dim 100 is not divisible")
    assert "dim 96 or 108" in reported["suggestion"]


def test_valid_answers_exit_0(tmp_path):
    module = render_hook("pre_gen_project", rendered_context(), tmp_path)
    result = run_hook_script(module, tmp_path, {})
    assert result.returncode == 0, result.stderr


# ---- post_gen_project: prune table, answers file, next steps ----

PLUGIN_FILES = {
    "wandb": {"plugins/wandb.py", "tests/test_plugin_wandb.py"},
    "huggingface": {"plugins/huggingface.py", "tests/test_plugin_huggingface.py"},
    "synthex": {"plugins/synthex.py", "data/synthex_prompts.txt", "tests/test_plugin_synthex.py"},
}
ALL_PLUGINS = "wandb,huggingface,synthex"
ONLY_FOR = {"gpt": {"models/architectures/gpt.py", "exporters/gguf.py", "tests/test_model.py",
                    "tests/test_generate.py", "tests/test_chat.py", "exporters/cog_predictor.py",
                    "tests/test_export.py", "importers", "models/hf_layout.py",
                    "models/lora.py", "tests/test_import.py", "tests/test_lora.py"},
            "bert": {"models/architectures/bert.py", "data/masked_lm.py", "runtime/fill_mask.py",
                     "tests/test_bert.py", "exporters/cog_fill_mask.py"},
            "t5": {"models/architectures/t5.py", "data/span_corruption.py", "runtime/seq2seq.py",
                   "tests/test_t5.py", "exporters/cog_text2text.py"}}


# Instruction tuning (make finetune): gpt and t5 write answers, an encoder does not.
FINETUNE_FILES = {"training/finetune.py", "runtime/chat_tuning.py", "data/finetune.py",
                  "corpus/conversations.py", "corpus/instructions.py", "tokenizer/chat_format.py",
                  "tokenizer/chat_template.jinja", "tests/test_finetune.py"}


def architecture_files_pruned(model: str) -> set[str]:
    others = set().union(*(paths for name, paths in ONLY_FOR.items() if name != model))
    # chat.py: an encoder cannot chat; sampling.py: the token sampler gpt and t5 share.
    return others | ({"chat.py", "runtime/sampling.py", *FINETUNE_FILES} if model == "bert"
                     else set())


@pytest.mark.parametrize("model", cookiecutter_json()["model"])
def test_prune_removes_exactly_what_the_answers_do_not_need(post, tmp_path, model):
    others = architecture_files_pruned(model)
    for license_name in cookiecutter_json()["license"]:
        answers = rendered_context(license=license_name, model=model, plugins=ALL_PLUGINS)
        expected = others | ({"LICENSE"} if license_name == "None" else set())
        assert set(post.pruned_paths(answers)) == expected
    for path in post.pruned_paths(rendered_context(license="None", model=model)):
        assert (PROJECT_TEMPLATE / path).exists(), f"stale path {path}"
    project = tmp_path / "project"
    for path in [*post.pruned_paths(rendered_context(license="None", model=model)),
                 "README.md"]:
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text("x")
    post.prune(str(project), post.pruned_paths(rendered_context(license="None", model=model)))
    assert tree_files(project) == {"README.md"}


@pytest.mark.parametrize("chosen", ["", "wandb", "huggingface,synthex", " synthex , wandb"])
def test_the_plugins_not_chosen_lose_their_files(post, chosen):
    names = {name.strip() for name in chosen.split(",") if name.strip()}
    expected = set().union(*(files for name, files in PLUGIN_FILES.items() if name not in names))
    pruned = set(post.pruned_paths(rendered_context(plugins=chosen)))
    assert pruned == expected | architecture_files_pruned("gpt")


def test_tool_caches_from_a_template_checkout_are_removed(post, tmp_path):
    project = tmp_path / "project"
    for cache in ("__pycache__", "models/__pycache__", ".ruff_cache/0.1", ".pytest_cache"):
        (project / cache).mkdir(parents=True)
        (project / cache / "junk").write_bytes(b"\xff\xfe")
    (project / "models" / "gpt.py").write_text("kept")
    post.remove_caches(str(project))
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*")) == \
        ["models", "models/gpt.py"]


def test_prune_fails_loudly_on_a_stale_entry(post, tmp_path):
    with pytest.raises(FileNotFoundError):
        post.prune(str(tmp_path), ["no/such/file.py"])


@pytest.mark.parametrize("template, kept", [
    ("gh:someone/create-llm", True),
    ("https://github.com/someone/create-llm.git", True),
    ("git@github.com:someone/create-llm.git", True),
    ("/home/me/create-llm", False),
    (".", False),
])
def test_answers_file_keeps_answers_and_only_a_remote_template(post, template, kept):
    context = {**rendered_context(), "_template": template, "_checkout": "v1"}
    answers = post.replay_answers(context)
    public = {key for key in cookiecutter_json() if not key.startswith("_")}
    assert public <= set(answers)
    assert ("_template" in answers) == kept and ("_checkout" in answers) == kept
    assert not {"_presets", "_copy_without_render", "_output_dir", "_repo_dir"} & set(answers)
    assert not any(isinstance(v, str) and v.startswith("/") for v in answers.values())


def run_post_hook(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, Path]:
    project = tmp_path / "my-llm"
    project.mkdir()
    module = render_hook("post_gen_project", rendered_context(plugins=ALL_PLUGINS), tmp_path)
    for path in module.pruned_paths(rendered_context()):  # the files it removes are there
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text("x")
    return run_hook_script(module, project, env), project


def test_post_hook_writes_answers_and_prints_next_steps(tmp_path):
    result, project = run_post_hook(tmp_path, {})
    assert result.returncode == 0, result.stderr
    replay = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    assert replay["cookiecutter"]["project_slug"] == "my-llm"
    commands = printed_commands(result.stdout)
    assert commands[0] == "cd my-llm"
    targets = makefile_targets(PROJECT_TEMPLATE / "Makefile")
    for command in commands[1:]:
        assert command.split()[1] in targets, command
    assert {"make setup", "make train", "make help"} <= set(commands)


def test_post_hook_is_quiet_under_the_wrapper(tmp_path):
    result, project = run_post_hook(tmp_path, {"CREATE_LLM_WRAPPER": "1"})
    assert result.returncode == 0 and result.stdout == ""
    assert (project / ".cookiecutter.json").is_file()
