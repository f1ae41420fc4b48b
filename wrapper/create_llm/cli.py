"""The `create-llm` command: scaffold a PyTorch LLM training project from the bundled template.

    create-llm                                  # asks for what it needs (in a terminal)
    create-llm my-llm --template tiny --yes     # no questions
    create-llm my-llm -t custom --layers 8 --heads 8 --dim 512
    create-llm my-llm --from HuggingFaceTB/SmolLM2-135M     # start from a published model
    create-llm my-llm --plugins wandb,huggingface           # with plugins
    create-llm my-llm author="Ada Lovelace" license=Apache-2.0   # any template answer as KEY=VALUE
    create-llm --list-templates

It is a thin layer over cookiecutter: it checks what cookiecutter cannot (folder name, empty
target, flag combinations), renders the template with cookiecutter's Python API, then creates
.venv with PyTorch and the requirements, makes the first git commit, and prints next steps.
Imports of cookiecutter and rich wait until they are needed, so the command starts fast.
"""

import difflib
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperCommand

from create_llm import __version__
from create_llm.errors import CreateLLMError
from create_llm.names import check_plain_text, check_project_name, slug_problem
from create_llm.template import template_context

# The choices, read from cookiecutter.json: typer needs them when this module is imported.
PresetName = Literal[tuple(template_context()["preset"])]  # type: ignore[valid-type]
ModelName = Literal[tuple(template_context()["model"])]  # type: ignore[valid-type]
TokenizerName = Literal[tuple(template_context()["tokenizer"])]  # type: ignore[valid-type]

KEY_ALIASES = {"template": "preset"}  # `template=small` reads like the -t/--template flag
# What to do next in a project made with --from (its tokenizer and weights are the checkpoint's).
FROM_STEPS = [("make generate", "try the imported model on a prompt"),
              ("make data", "tokenize your text (data/raw) with its tokenizer"),
              ("make train", "continue training it on that text")]
PROMPTED_CUSTOM_KEYS = ("custom_layers", "custom_heads", "custom_dim", "custom_vocab_size",
                        "custom_max_length")

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


class Command(TyperCommand):
    """Mistakes that typer itself catches (a bad --template choice, an unknown option, a bad
    KEY=VALUE) print `Error:` / `Suggestion:` like every other mistake, not a usage box; the
    exit status stays click's 2 for command-line usage errors."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:  # not standalone: typer hands us its exceptions (and --help's exit code)
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as error:  # typer's (vendored) click usage errors
            typer.echo(f"Error: {error.format_message()}", err=True)
            typer.echo("Suggestion: run `create-llm --help` to see every option and its choices.",
                       err=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def debug_enabled(flag: bool) -> bool:
    return flag or os.environ.get("CREATE_LLM_DEBUG", "") not in ("", "0")


def stdin_is_tty() -> bool:
    return sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty()


def can_prompt(yes: bool) -> bool:
    """Never ask with --yes, in CI, or without a terminal on stdin."""
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false")
    return not yes and not in_ci and stdin_is_tty()


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"create-llm {__version__}")
        raise typer.Exit()


def show_templates(value: bool) -> None:
    if value:
        from rich.console import Console

        from create_llm.presets import presets_table

        console, context = Console(), template_context()
        for model in context["model"]:  # every architecture's presets, computed counts
            console.print(presets_table(context, model))
            console.print()
        raise typer.Exit()


# ---- answers: KEY=VALUE arguments and flags -> cookiecutter extra_context ----

def parse_key_values(items: list[str], context: dict[str, Any]) -> dict[str, Any]:
    """`author=Ada` -> {"author": "Ada"}, checked against cookiecutter.json and typed like it."""
    public = [key for key in context if not key.startswith("_")]
    answers: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(
                f"unexpected argument {item!r}: expected KEY=VALUE (quote a name with spaces: "
                f'create-llm "my llm")'
            )
        key = KEY_ALIASES.get(key.strip(), key.strip())
        if key not in public:
            close = difflib.get_close_matches(key, public, n=1)
            hint = f" Did you mean {close[0]}?" if close else f" Known keys: {', '.join(public)}."
            raise typer.BadParameter(f"unknown template key {key!r}.{hint}")
        default = context[key]
        if isinstance(default, list):
            if value not in default:
                raise typer.BadParameter(
                    f"{value!r} is not a valid {key}; choose from {', '.join(default)}."
                )
        elif isinstance(default, int) and not isinstance(default, bool):
            try:
                value = int(value)
            except ValueError:
                raise typer.BadParameter(f"{key} must be a whole number, not {value!r}.") from None
        else:
            check_plain_text(key, value)
        answers[key] = value
    return answers


def parse_plugins(value: str, context: dict[str, Any]) -> str:
    """'wandb, huggingface' -> 'wandb,huggingface', each one a plugin of the template (its
    `_plugins`), none twice. The pre-gen hook checks the same for plain cookiecutter."""
    known = list(context["_plugins"])
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise CreateLLMError(f"{name!r} is not a plugin.{hint}",
                                 f"Choose from {', '.join(known)} (comma-separated), or none.")
    if len(set(names)) != len(names):
        raise CreateLLMError(f"--plugins names a plugin twice ({value!r}).",
                             "Name each plugin once, e.g. --plugins wandb,huggingface.")
    return ",".join(names)


def merge(answers: dict[str, Any], key: str, value: Any) -> None:
    """Add a flag's value; the same key given as a flag and as KEY=VALUE must agree."""
    if value is None:
        return
    if key in answers and answers[key] != value:
        raise typer.BadParameter(f"{key} is given twice ({answers[key]!r} and {value!r}).")
    answers[key] = value


def ask_choice(question: str, choices: list[str], labels: dict[str, str], default: str) -> str:
    typer.echo(question)
    for choice in choices:
        typer.echo(f"  {labels.get(choice, choice)}")
    while True:
        value = typer.prompt("Choose", default=default).strip()
        if value in choices:
            return value
        typer.echo(f"Please choose one of: {', '.join(choices)}")


def ask_plugins(context: dict[str, Any]) -> str:
    typer.echo("Plugins (optional; comma-separated, Enter for none):")
    for name, what in context["_plugins"].items():
        typer.echo(f"  {name:<12} {what}")
    while True:
        value = typer.prompt("Plugins", default="", show_default=False)
        try:
            return parse_plugins(value, context)
        except CreateLLMError as error:
            typer.echo(f"{error.message} {error.suggestion}")


def ask_name(default: str) -> str:
    while True:
        name = typer.prompt("What is your project named?", default=default).strip()
        try:
            check_project_name(name)
            return name
        except CreateLLMError as error:
            typer.echo(f"{error.message} {error.suggestion}")


def prompt_missing(answers: dict[str, Any], context: dict[str, Any]) -> None:
    """Ask for what no flag or KEY=VALUE set: the name, size, tokenizer, and custom sizes."""
    prompts = context.get("__prompts__", {})
    if "project_name" not in answers:
        answers["project_name"] = ask_name(context["project_name"])
    for key in ("preset", "model", "tokenizer"):
        choices = context[key]
        if key not in answers and len(choices) > 1:
            labels = prompts.get(key, {})
            question = labels.get("__prompt__", key) if isinstance(labels, dict) else key
            answers[key] = ask_choice(question, choices, labels, choices[0])
    if "plugins" not in answers:
        answers["plugins"] = ask_plugins(context)
    if answers.get("preset", context["preset"][0]) == "custom":
        for key in PROMPTED_CUSTOM_KEYS:
            if key not in answers:
                question = prompts.get(key, key)
                answers[key] = typer.prompt(question, default=context[key], type=int)


def start_from(source: str, answers: dict[str, Any]) -> dict[str, Any]:
    """--from: refuse the flags it conflicts with, read the checkpoint's config.json (nothing is
    written yet) and answer for a custom gpt project of its shape. Returns config.json."""
    from create_llm.checkpoint import read_config, shape_answers

    conflicts = {"model": "gpt", "preset": "custom", "tokenizer": "auto"}
    for key, allowed in conflicts.items():
        if answers.get(key, allowed) != allowed:
            flag = "--template" if key == "preset" else f"--{key}"
            why = {"model": "imports a Llama-family checkpoint, which is a gpt model",
                   "preset": "takes the model's size from the checkpoint",
                   "tokenizer": "uses the checkpoint's own tokenizer"}[key]
            raise CreateLLMError(f"--from {why}; {flag} {answers[key]} conflicts with it.",
                                 f"Leave out {flag}.")
    given = [key for key in PROMPTED_CUSTOM_KEYS if key in answers]
    if given:
        flag = "--" + given[0].removeprefix("custom_").replace("_", "-")
        raise CreateLLMError(f"--from takes the model's size from the checkpoint; {flag} "
                             "conflicts with it.",
                             f"Leave out {flag}: the checkpoint's own is used.")
    config = read_config(source)
    answers.update(shape_answers(config), tokenizer="auto")
    answers.setdefault("description",
                       f"A language model that starts from {source.rstrip('/').split('/')[-1]}")
    return config


# ---- writing the project ----

def check_output_dir(output_dir: Path) -> None:
    """--output-dir must be a folder we can write in, or one we can create (checked before
    anything is written)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise CreateLLMError(f"--output-dir {output_dir} is a file, not a folder.",
                             "Choose a folder for --output-dir (it is created if missing).")
    existing = next(parent for parent in (output_dir, *output_dir.absolute().parents)
                    if parent.exists())
    if not existing.is_dir():
        raise CreateLLMError(f"--output-dir {output_dir} is inside {existing}, which is a file.",
                             "Choose a folder for --output-dir (it is created if missing).")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CreateLLMError(f"--output-dir {output_dir}: {existing} is not writable.",
                             "Choose a folder you can write to, or make it writable.")


def conflicts(target: Path) -> list[str]:
    """What is in the way at the target path (empty: free to write)."""
    if not target.exists():
        return []
    if not target.is_dir():
        return [target.name]
    return sorted(entry.name + ("/" if entry.is_dir() else "") for entry in target.iterdir())


def remove_partial(target: Path, existed: bool) -> None:
    """Undo a half-written scaffold: remove the folder we made, or empty the one that was empty."""
    if not existed:
        shutil.rmtree(target, ignore_errors=True)
    elif target.is_dir():
        for entry in target.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the hooks cookiecutter starts, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def render(template_dir: Path, answers: dict[str, Any], output_dir: Path, overwrite: bool,
           debug: bool) -> Path:
    """Run cookiecutter; turn a failed hook into the hook's own message."""
    import json
    import logging

    from cookiecutter.exceptions import CookiecutterException, FailedHookException
    from cookiecutter.main import cookiecutter

    if not debug:
        # cookiecutter logs a traceback when a hook fails; the hook's message is all we show.
        logger = logging.getLogger("cookiecutter")
        if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
            logger.addHandler(logging.NullHandler())
    with tempfile.TemporaryDirectory(prefix="create-llm-") as scratch:
        error_file = Path(scratch) / "hook-error.json"
        # CREATE_LLM_WRAPPER: the post-gen hook leaves the next steps to us.
        # CREATE_LLM_ERROR_FILE: the pre-gen hook writes its message there instead of stderr.
        hook_env = {"CREATE_LLM_WRAPPER": "1", "CREATE_LLM_ERROR_FILE": str(error_file)}
        try:
            with environment(hook_env):
                result = cookiecutter(str(template_dir), no_input=True, extra_context=answers,
                                      output_dir=str(output_dir), overwrite_if_exists=overwrite)
        except FailedHookException as error:
            if error_file.is_file():
                reported = json.loads(error_file.read_text(encoding="utf-8"))
                raise CreateLLMError(reported["message"], reported["suggestion"]) from error
            raise CreateLLMError(f"a template hook failed ({error}).",
                                 "Run again with --debug to see why.") from error
        except CookiecutterException as error:
            raise CreateLLMError(f"cookiecutter could not render the template: {error}",
                                 "Run again with --debug and report it as a bug.") from error
        except OSError as error:  # a read-only folder, a full disk, a path through a file
            where = error.filename or output_dir
            raise CreateLLMError(f"could not write {where}: {error.strerror or error}.",
                                 "Choose an --output-dir you can write to (with free space).") \
                from error
    return Path(result)


def display_path(path: Path) -> str:
    """./my-llm when under the current directory, else the absolute path."""
    try:
        return "./" + path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def cd_path(path: Path) -> str:
    """What to type after `cd`: relative to the current directory when that is shorter."""
    relative = os.path.relpath(path.resolve(), Path.cwd().resolve())
    return relative if len(relative) < len(str(path.resolve())) else str(path.resolve())


def print_summary(project: Path, answers: dict[str, Any], context: dict[str, Any],
                  installed: bool, source: str | None = None,
                  checkpoint_config: dict[str, Any] | None = None) -> None:
    from rich.console import Console

    from create_llm.presets import describe, template_presets

    console = Console(highlight=False, soft_wrap=True)
    preset = answers.get("preset", context["preset"][0])
    chosen = {**context, **answers, "preset": preset,
              "model": answers.get("model", context["model"][0])}
    info = template_presets().preset_values(chosen)
    shape = template_presets().model_shape(chosen)
    where = display_path(project)
    console.print(f"\n[bold green]Success![/] Created {project.name} at {where}\n")
    cd = (f"cd {shlex.quote(cd_path(project))}", "go into the project")
    if source is not None and checkpoint_config is not None:
        from create_llm.checkpoint import describe_checkpoint, import_source, parameter_count

        count = parameter_count(checkpoint_config, template_presets())
        console.print(f"  Model     from {source}: {describe_checkpoint(checkpoint_config, count)}")
        if installed:
            console.print("  Weights   imported as checkpoints/step_000000.pt (and best.pt), with "
                          "its tokenizer\n")
            steps = [cd]
        else:
            console.print("  Weights   not imported yet: that needs the project's .venv\n")
            steps = [cd, tuple(context["_next_steps"][0]),
                     (f"make import ARGS=\"--from {shlex.quote(import_source(source))}\"",
                      "copy its weights and tokenizer into the project")]
        steps += FROM_STEPS
    else:
        console.print(f"  Size      {preset}: {describe(shape)}")
        cpu = "" if info["runs_on_cpu"] else " — too big to train on a CPU"
        console.print(f"  Hardware  {info['device']}, {info['min_ram_gb']} GB RAM or more{cpu}")
        console.print(f"  Time      {info['expected_time']}\n")
        # cookiecutter.json's _next_steps (the post-gen hook prints the same ones): `make setup`
        # first when nothing is installed yet, else everything after it.
        after = context["_next_steps"][1:] if installed else context["_next_steps"][:-1]
        steps = [cd, *map(tuple, after)]
    width = max(len(command) for command, _ in steps) + 3
    console.print("Next steps:")
    for command, what in steps:
        console.print(f"  [cyan]{command:<{width}}[/]{what}")
    console.print("\nRun `make help` in the project for every other command.")


def create(name: str | None, items: list[str], flags: dict[str, Any], yes: bool,
           skip_install: bool, no_git: bool, output_dir: Path, debug: bool,
           source: str | None = None) -> None:
    """Everything the command does, raising CreateLLMError for user mistakes. source: --from,
    a checkpoint to start from (read before anything is written, imported after the install)."""
    from create_llm.template import find_template

    template_dir = find_template()
    context = template_context()
    answers = parse_key_values(items, context)
    merge(answers, "project_name", name)
    for key, value in flags.items():
        merge(answers, key, value)
    checkpoint_config = start_from(source, answers) if source is not None else None
    custom_given = [key for key in PROMPTED_CUSTOM_KEYS if key in answers]
    if custom_given:
        answers.setdefault("preset", "custom")
        if answers["preset"] != "custom":
            flag = "--" + custom_given[0].removeprefix("custom_").replace("_", "-")
            raise CreateLLMError(
                f"{flag} sets a custom size, but the template is {answers['preset']}.",
                "Add --template custom, or leave out the size flags.",
            )
    if "plugins" in answers:
        answers["plugins"] = parse_plugins(answers["plugins"], context)
    if can_prompt(yes):
        prompt_missing(answers, context)
    answers.setdefault("project_name", context["project_name"])

    # The folder name: from the name, unless project_slug=... was given.
    if "project_slug" in answers:
        slug = answers["project_slug"]
        problem = slug_problem(slug)
        if problem:
            raise CreateLLMError(f"{problem}.", "Use a project_slug like my-llm.")
    else:
        slug = answers["project_slug"] = check_project_name(answers["project_name"])
    for key in ("project_name", "description", "author"):
        if isinstance(answers.get(key), str):
            check_plain_text(key, answers[key])

    check_output_dir(output_dir)
    target = output_dir / slug
    in_the_way = conflicts(target)
    if in_the_way:
        shown = ", ".join(in_the_way[:10]) + (" ..." if len(in_the_way) > 10 else "")
        raise CreateLLMError(
            f"{display_path(target)} already exists and is not empty ({shown}).",
            "Choose another name, another --output-dir, or remove that folder.",
        )

    existed = target.is_dir()
    try:
        project = render(template_dir, answers, output_dir, overwrite=existed, debug=debug)
    except BaseException:
        remove_partial(target, existed)
        raise

    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not no_git:
        from create_llm.git import init_repository

        warning = init_repository(project)
        if warning:
            console.print(f"[yellow]Note:[/] {warning}")
    installed = False
    if not skip_install:
        from create_llm.install import install

        torch_spec = os.environ.get("TORCH_SPEC", "").strip() or "torch"
        console.print(f"Installing into {display_path(project)}/.venv (TORCH_SPEC={torch_spec})")
        try:
            install(project, torch_spec, report=console.print)
        except KeyboardInterrupt:
            console.print(
                f"\nInstall interrupted; removed the partial .venv. The project is complete: "
                f"run `cd {shlex.quote(cd_path(project))} && make setup` to install."
            )
            raise typer.Exit(130) from None
        installed = True
    if source is not None and installed:
        from create_llm.checkpoint import import_into

        import_into(project, source, report=console.print)
        if not no_git:
            from create_llm.git import commit_all

            commit_all(project, f"Import {source} (make import)")
    print_summary(project, answers, context, installed, source, checkpoint_config)


@app.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
def main(
    name: Annotated[str | None, typer.Argument(
        help="Project name; its folder is the name in lowercase with '-' for spaces.",
        show_default=False)] = None,
    answers: Annotated[list[str] | None, typer.Argument(
        metavar="[KEY=VALUE]...",
        help="Any other answer of the template, e.g. author='Ada Lovelace' license=Apache-2.0 "
             "description='...'.", show_default=False)] = None,
    template: Annotated[PresetName | None, typer.Option(
        "-t", "--template", help="Model size preset (see --list-templates).",
        show_default=False)] = None,
    model: Annotated[ModelName | None, typer.Option(
        help="Architecture: gpt (decoder-only, writes text), bert (encoder-only, fills in "
             "[MASK]s), t5 (encoder-decoder, fills in spans, text to text).",
        show_default=False)] = None,
    tokenizer: Annotated[TokenizerName | None, typer.Option(
        help="Tokenizer type (auto: the architecture's own, bpe / wordpiece / unigram).",
        show_default=False)] = None,
    plugins: Annotated[str | None, typer.Option(
        help="Plugins, comma-separated: wandb (Weights & Biases), huggingface (push to the "
             "Hub after training), synthex (synthetic data from a chat API). Default: none.",
        show_default=False)] = None,
    layers: Annotated[int | None, typer.Option(
        help="custom: transformer blocks.", show_default=False)] = None,
    heads: Annotated[int | None, typer.Option(
        help="custom: attention heads (must divide --dim).", show_default=False)] = None,
    dim: Annotated[int | None, typer.Option(
        help="custom: model width.", show_default=False)] = None,
    vocab_size: Annotated[int | None, typer.Option(
        help="custom: tokenizer vocabulary size.", show_default=False)] = None,
    max_length: Annotated[int | None, typer.Option(
        help="custom: context length in tokens.", show_default=False)] = None,
    from_: Annotated[str | None, typer.Option(
        "--from", metavar="PATH_OR_HUB_ID",
        help="Start from a published model instead of from scratch: a Hugging Face folder "
             "(config.json, model.safetensors, tokenizer.json) or a Hub id such as "
             "HuggingFaceTB/SmolLM2-135M. gpt; Llama, Mistral and Qwen2 checkpoints. Its "
             "shape, tokenizer and weights become the project's (`make import` after the "
             "install).", show_default=False)] = None,
    yes: Annotated[bool, typer.Option(
        "-y", "--yes", help="Use defaults for everything not given; never ask.")] = False,
    skip_install: Annotated[bool, typer.Option(
        "--skip-install",
        help="Do not create .venv or install packages (run `make setup` later).")] = False,
    no_git: Annotated[bool, typer.Option("--no-git", help="Do not run git init.")] = False,
    output_dir: Annotated[Path, typer.Option(
        "-o", "--output-dir", help="Where the project folder is created.")] = Path("."),
    list_templates: Annotated[bool, typer.Option(
        "--list-templates", help="Show the size presets (parameters, hardware, time) and exit.",
        callback=show_templates, is_eager=True)] = False,
    version: Annotated[bool, typer.Option(
        "--version", help="Show the version and exit.", callback=show_version,
        is_eager=True)] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks (also CREATE_LLM_DEBUG=1).")] = False,
) -> None:
    """Create a PyTorch project that trains your own language model.

    Environment: TORCH_SPEC picks the PyTorch to install (default `torch`), CI=1 never prompts.
    """
    items = list(answers or [])
    if name is not None and "=" in name:  # `create-llm author=Ada`: no name, only answers
        items.insert(0, name)
        name = None
    flags = {"preset": template, "model": model, "tokenizer": tokenizer, "plugins": plugins,
             "custom_layers": layers, "custom_heads": heads, "custom_dim": dim,
             "custom_vocab_size": vocab_size, "custom_max_length": max_length}
    try:
        create(name, items, flags, yes, skip_install, no_git, output_dir, debug_enabled(debug),
               from_)
    except CreateLLMError as error:
        if debug_enabled(debug):
            raise
        typer.echo(f"Error: {error.message}", err=True)
        if error.suggestion:
            typer.echo(f"Suggestion: {error.suggestion}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("\nAborted; nothing was left half-written.", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, typer.BadParameter):
        raise
    except Exception as error:
        if debug_enabled(debug):
            raise
        typer.echo(f"Error: unexpected failure: {type(error).__name__}: {error}", err=True)
        typer.echo("Suggestion: run again with --debug (or CREATE_LLM_DEBUG=1) to see the "
                   "traceback, and report it.", err=True)
        raise typer.Exit(1) from None
