"""The `create-llm` command, through typer's CliRunner (in-process; hooks run as subprocesses).

    .venv/bin/python -m pytest tests/test_cli.py -q
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import cookiecutter_json, makefile_targets, printed_commands, tree_files
from typer.testing import CliRunner

from create_llm import __version__, cli, install
from create_llm.presets import template_presets

runner = CliRunner()
QUICK = ["--yes", "--skip-install", "--no-git"]


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    return runner.invoke(cli.app, list(args), input=input, env=env)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def answers_of(project: Path) -> dict:
    return json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))["cookiecutter"]


def test_help_lists_every_flag():
    result = invoke("--help")
    assert result.exit_code == 0
    for flag in ("--template", "--model", "--tokenizer", "--layers", "--heads",
                 "--dim", "--vocab-size", "--max-length", "--yes", "--skip-install", "--no-git",
                 "--output-dir", "--list-templates", "--version"):
        assert flag in result.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"create-llm {__version__}"


def test_list_templates_shows_computed_parameter_counts():
    result = runner.invoke(cli.app, ["--list-templates"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    presets = template_presets()
    tables = result.output.split("create-llm templates: --model ")[1:]
    assert [table.split()[0] for table in tables] == cookiecutter_json()["model"]
    for model, table in zip(cookiecutter_json()["model"], tables, strict=True):
        for preset in ("nano", "tiny", "small", "base"):
            answers = {**cookiecutter_json(), "preset": preset, "model": model}
            count = presets.format_count(presets.parameter_count(presets.model_shape(answers)))
            assert preset in table and count in table, (model, preset, count)
    assert "1.07M" in tables[0] and "10.1M" in tables[0]  # gpt nano ~1M, tiny ~10M
    # BERT-base's width and depth in ModernBERT's layer (GeGLU 2048 wide), T5-small's shape
    assert "110M" in tables[1] and "60.6M" in tables[2]
    assert not Path("my-llm").exists()


@pytest.mark.parametrize("args", [
    ["x", "--template", "huge"],
    ["x", "--model", "lstm"],
    ["x", "--tokenizer", "sentencepiece"],
    ["x", "license=GPL"],
    ["x", "preset=huge"],
    ["x", "licence=MIT"],
    ["x", "custom_layers=many"],
    ["x", "unexpected-word"],
])
def test_bad_choices_exit_2_without_traceback(args):
    result = invoke(*args, *QUICK)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not Path("x").exists()


def test_unknown_key_suggests_the_close_one():
    result = invoke("x", "licence=MIT", *QUICK)
    assert "Did you mean license?" in result.output


def test_key_value_answers_reach_the_project():
    result = invoke("my-llm", "author=Ada Lovelace", "license=Apache-2.0",
                    "description=A model of my own", "template=nano", *QUICK)
    assert result.exit_code == 0, result.output
    answers = answers_of(Path("my-llm"))
    assert answers["author"] == "Ada Lovelace"
    assert answers["license"] == "Apache-2.0"
    assert answers["preset"] == "nano"  # `template=` is an alias of the preset key
    assert "A model of my own" in Path("my-llm/README.md").read_text(encoding="utf-8")


def test_a_flag_and_a_key_value_that_disagree_are_refused():
    result = invoke("x", "-t", "nano", "preset=tiny", *QUICK)
    assert result.exit_code == 2 and "given twice" in result.output


def test_defaults_without_a_name():
    result = invoke(*QUICK)
    assert result.exit_code == 0, result.output
    assert answers_of(Path("my-llm"))["preset"] == cookiecutter_json()["preset"][0]


def test_name_with_spaces_becomes_a_slug():
    result = invoke("My LLM", *QUICK)
    assert result.exit_code == 0, result.output
    answers = answers_of(Path("my-llm"))
    assert answers["project_name"] == "My LLM" and answers["project_slug"] == "my-llm"


@pytest.mark.parametrize("name, fragment", [
    ("../escape", "is a path"),
    ("a/b", "is a path"),
    ("Mön", "cannot be the project folder name"),
    ('bad"quote', "cannot be the project folder name"),
])
def test_unusable_names_are_refused_before_writing(tmp_path, name, fragment):
    result = invoke(name, *QUICK)
    assert result.exit_code == 1
    assert fragment in result.stderr and "Suggestion:" in result.stderr
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "escape").exists()


def test_template_braces_in_answers_are_refused():
    result = invoke("x", "description={{ 7 * 7 }}", *QUICK)
    assert result.exit_code == 1 and "template braces" in result.stderr


# ---- prompting ----

def test_prompts_ask_only_for_what_no_flag_set(monkeypatch):
    monkeypatch.setattr(cli, "stdin_is_tty", lambda: True)
    result = invoke("--skip-install", "--no-git",
                    input="my-proj\nnano\nbert\nunigram\nwandb, synthex\n")
    assert result.exit_code == 0, result.output
    assert "What is your project named?" in result.output and "Architecture" in result.output
    assert "Plugins" in result.output
    answers = answers_of(Path("my-proj"))
    assert (answers["preset"], answers["model"], answers["tokenizer"]) == \
        ("nano", "bert", "unigram")
    assert "architecture: 'bert'" in Path("my-proj/llm.config.js").read_text(encoding="utf-8")
    assert answers["plugins"] == "wandb,synthex"
    assert Path("my-proj/plugins/synthex.py").is_file()

    result = invoke("other", "-t", "small", "--model", "t5", "--plugins", "", "--skip-install",
                    "--no-git", input="wordpiece\n")
    assert result.exit_code == 0, result.output
    assert "project named" not in result.output and "Model size" not in result.output
    assert "Architecture" not in result.output and "Plugins" not in result.output
    assert answers_of(Path("other"))["tokenizer"] == "wordpiece"


def test_a_mistyped_plugin_is_asked_again(monkeypatch):
    monkeypatch.setattr(cli, "stdin_is_tty", lambda: True)
    result = invoke("p", "-t", "nano", "--model", "gpt", "--tokenizer", "bpe", "--skip-install",
                    "--no-git", input="wandbb\nwandb\n")
    assert result.exit_code == 0, result.output
    assert "'wandbb' is not a plugin. Did you mean wandb?" in result.output
    assert answers_of(Path("p"))["plugins"] == "wandb"


def test_custom_prompts_for_its_sizes(monkeypatch):
    monkeypatch.setattr(cli, "stdin_is_tty", lambda: True)
    result = invoke("mine", "-t", "custom", "--model", "gpt", "--tokenizer", "bpe", "--dim",
                    "256", "--skip-install", "--no-git", input="\n4\n8\n4096\n128\n")
    assert result.exit_code == 0, result.output
    answers = answers_of(Path("mine"))
    assert (answers["custom_layers"], answers["custom_heads"], answers["custom_dim"]) == \
        ("4", "8", "256")
    assert (answers["custom_vocab_size"], answers["custom_max_length"]) == ("4096", "128")


@pytest.mark.parametrize("how", ["--yes", "CI", "no-tty"])
def test_never_prompts_with_yes_in_ci_or_without_a_terminal(monkeypatch, how):
    monkeypatch.setattr(cli, "stdin_is_tty", lambda: how != "no-tty")
    args = ["--skip-install", "--no-git"] + (["--yes"] if how == "--yes" else [])
    env = {"CI": "true"} if how == "CI" else None
    result = invoke(*args, input="", env=env)
    assert result.exit_code == 0, result.output
    assert "?" not in result.output and "Choose" not in result.output
    assert Path("my-llm/llm.config.js").is_file()


# ---- the target folder ----

def test_a_non_empty_target_is_refused_and_left_alone(tmp_path):
    (tmp_path / "my-llm").mkdir()
    (tmp_path / "my-llm" / "notes.txt").write_text("mine")
    (tmp_path / "my-llm" / "data").mkdir()
    result = invoke("my-llm", *QUICK)
    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert "notes.txt" in result.stderr and "data/" in result.stderr
    assert tree_files(tmp_path / "my-llm") == {"notes.txt"}


def test_an_empty_target_is_used(tmp_path):
    (tmp_path / "my-llm").mkdir()
    result = invoke("my-llm", *QUICK)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "my-llm" / "llm.config.js").is_file()


def test_output_dir(tmp_path):
    result = invoke("my-llm", "-o", "nested/deeper", *QUICK)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "nested" / "deeper" / "my-llm" / "Makefile").is_file()


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    result = invoke("my-llm", "-o", "file", *QUICK)
    assert result.exit_code == 1 and "is a file" in result.stderr


# ---- failures ----

def test_hook_refusal_is_one_clean_error(tmp_path):
    result = invoke("x", "-t", "custom", "--dim", "100", "--heads", "6", *QUICK)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "Error: dim 100 is not divisible by heads 6 (each head gets dim / heads channels).")
    assert result.stderr.splitlines()[1].startswith("Suggestion: Use dim 96 or 108")
    assert "Traceback" not in result.output and "Stopping generation" not in result.output
    assert not (tmp_path / "x").exists()


def test_custom_flags_imply_custom_and_conflict_with_other_presets():
    result = invoke("mine", "--layers", "2", "--heads", "4", "--dim", "64", *QUICK)
    assert result.exit_code == 0, result.output
    assert answers_of(Path("mine"))["preset"] == "custom"
    result = invoke("other", "-t", "nano", "--layers", "2", *QUICK)
    assert result.exit_code == 1 and "--template custom" in result.stderr


def test_a_read_only_output_dir_is_refused_before_writing(tmp_path, monkeypatch):
    """(As root every folder is writable, so the check itself is made to say no.)"""
    real_access = os.access
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False if Path(path) == tmp_path
                        else real_access(path, mode))
    result = invoke("x", "-o", str(tmp_path / "new" / "deeper"), *QUICK)
    assert result.exit_code == 1, result.output
    assert f"{tmp_path} is not writable" in result.stderr and "Suggestion:" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given, kept", [
    (["--plugins", "wandb,huggingface"], {"wandb", "huggingface"}),
    (["--plugins", " synthex , wandb "], {"synthex", "wandb"}),
    (["plugins=huggingface"], {"huggingface"}),
    (["--plugins", ""], set()),
    ([], set()),
])
def test_plugins_choose_the_plugin_files(given, kept):
    result = invoke("x", *given, *QUICK)
    assert result.exit_code == 0, result.output
    files = {p.stem for p in Path("x/plugins").glob("*.py")} - {"__init__", "base", "manager"}
    assert files == kept
    assert {p.stem.removeprefix("test_plugin_") for p in Path("x/tests").glob("test_plugin_*")} \
        == kept
    assert Path("x/data/synthex_prompts.txt").exists() == ("synthex" in kept)


@pytest.mark.parametrize("value, message", [
    ("wandbb", "'wandbb' is not a plugin. Did you mean wandb?"),
    ("tensorboard", "'tensorboard' is not a plugin."),
    ("wandb,wandb", "names a plugin twice"),
])
def test_bad_plugins_are_refused_before_writing(value, message):
    result = invoke("x", "--plugins", value, *QUICK)
    assert result.exit_code == 1 and message in result.stderr
    assert "Suggestion: Choose from wandb, huggingface, synthex" in result.stderr or \
        "Name each plugin once" in result.stderr
    assert not Path("x").exists()


def fake_cookiecutter_that_is_interrupted(template, output_dir, **kwargs):
    project = Path(output_dir) / kwargs["extra_context"]["project_slug"]
    project.mkdir(parents=True, exist_ok=True)
    (project / "half-written.txt").write_text("...")
    raise KeyboardInterrupt


def test_ctrl_c_while_rendering_leaves_nothing(tmp_path, monkeypatch):
    import cookiecutter.main

    monkeypatch.setattr(cookiecutter.main, "cookiecutter", fake_cookiecutter_that_is_interrupted)
    result = invoke("my-llm", *QUICK)
    assert result.exit_code == 130
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_empties_a_target_that_was_empty(tmp_path, monkeypatch):
    import cookiecutter.main

    (tmp_path / "my-llm").mkdir()
    monkeypatch.setattr(cookiecutter.main, "cookiecutter", fake_cookiecutter_that_is_interrupted)
    assert invoke("my-llm", *QUICK).exit_code == 130
    assert list((tmp_path / "my-llm").iterdir()) == []


def test_unexpected_errors_are_one_line_unless_debugging(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    import cookiecutter.main

    monkeypatch.setattr(cookiecutter.main, "cookiecutter", broken)
    result = invoke("my-llm", *QUICK)
    assert result.exit_code == 1
    assert "Error: unexpected failure: RuntimeError: boom" in result.stderr
    assert "Traceback" not in result.output
    result = invoke("my-llm", "--debug", *QUICK)
    assert isinstance(result.exception, RuntimeError)
    result = invoke("my-llm", *QUICK, env={"CREATE_LLM_DEBUG": "1"})
    assert isinstance(result.exception, RuntimeError)


# ---- the summary ----

@pytest.mark.parametrize("skip_install", [True, False])
def test_every_printed_command_exists(monkeypatch, skip_install):
    calls = []
    monkeypatch.setattr(install, "install", lambda *args, **kwargs: calls.append(args))
    args = ["my-llm", "--yes", "--no-git"] + (["--skip-install"] if skip_install else [])
    result = invoke(*args, env={"TORCH_SPEC": "torch==2.13.0"})
    assert result.exit_code == 0, result.output
    assert "Success! Created my-llm at ./my-llm" in result.output
    assert calls == ([] if skip_install else [(Path("my-llm").resolve(), "torch==2.13.0")])
    commands = printed_commands(result.output)
    assert commands[0] == "cd my-llm" and Path("my-llm").is_dir()
    targets = makefile_targets(Path("my-llm/Makefile"))
    makes = [command.split()[1] for command in commands if command.startswith("make ")]
    assert set(makes) <= targets
    assert ("setup" in makes) == skip_install
    assert 3 <= len([line for line in result.output.splitlines()
                     if line.startswith("  cd ") or line.startswith("  make ")]) <= 5


def test_summary_states_size_hardware_and_time():
    result = invoke("my-llm", "-t", "nano", *QUICK)
    info = cookiecutter_json()["_presets"]["nano"]
    assert "1.07M parameters" in result.output
    assert info["device"] in result.output and info["expected_time"] in result.output


# ---- git ----

def git(project: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_git_init_and_first_commit_without_a_git_identity(tmp_path, monkeypatch):
    empty = tmp_path.parent / f"{tmp_path.name}-gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                 "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    result = invoke("my-llm", "--yes", "--skip-install")
    assert result.exit_code == 0, result.output
    project = Path("my-llm")
    assert git(project, "log", "--format=%an|%s") == "create-llm|Initial commit from create-llm"
    assert git(project, "status", "--porcelain") == ""


def test_git_keeps_the_users_identity(tmp_path, monkeypatch):
    config = tmp_path.parent / f"{tmp_path.name}-gitconfig"
    config.write_text("[user]\n\tname = Ada\n\temail = ada@example.com\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    result = invoke("my-llm", "--yes", "--skip-install")
    assert result.exit_code == 0, result.output
    assert git(Path("my-llm"), "log", "--format=%an") == "Ada"


def test_no_git_inside_another_repository(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = invoke("my-llm", "--yes", "--skip-install")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "my-llm" / ".git").exists()
    assert "inside another git repository" in result.output
