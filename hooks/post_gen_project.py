"""Finish the generated project (runs as a script inside it, stdlib only).

1. Prune: remove the files that the chosen options do not need (LICENSE when the license is
   "None"; the files of the architectures not chosen, ARCHITECTURE_FILES; each plugin's files
   when it was not chosen, PLUGIN_FILES), and tool caches (__pycache__, .ruff_cache) a template
   checkout may hold.
2. Write `.cookiecutter.json`: the answers, so the project can be regenerated or updated with
       cookiecutter --replay-file my-llm/.cookiecutter.json <template> -o elsewhere
   The file has cookiecutter's replay format, {"cookiecutter": {answers}}. It holds the public
   answers only: private keys such as `_presets` and `_copy_without_render` are left out so a
   replay takes them from the template's *current* cookiecutter.json, and local paths
   (`_output_dir`, `_repo_dir`, a local `_template`) are left out because they name places on the
   machine that generated it. `_template` (and `_checkout`) are kept when the template came from a
   remote source (gh:..., https://..., git@...), as a record of where the project came from.
3. Print short next steps (cookiecutter.json's `_next_steps`, which the wrapper prints too),
   unless the create-llm wrapper runs us (it sets CREATE_LLM_WRAPPER=1 and prints its summary).
"""

import json
import os
import re
import shutil

# Every answer, plus private keys, as data (never pasted into Python source).
CONTEXT = json.loads(r'''{{ cookiecutter | tojson }}''')

# Tool caches a developer may have left in a template checkout (cookiecutter.json copies them
# without rendering); they are not part of anyone's project.
CACHE_DIRS = ("__pycache__", ".ruff_cache", ".pytest_cache")

REMOTE_TEMPLATE = re.compile(r"^(gh|gl|bb):|^[a-z][a-z0-9+.-]*://|^git@")


# The files of one architecture only: a project keeps those of its own (`model`) and loses the
# others, so a bert project has no gpt.py, and no chat.py (an encoder cannot chat).
ARCHITECTURE_FILES = {
    "models/architectures/gpt.py": ("gpt",),
    "models/architectures/bert.py": ("bert",),
    "models/architectures/t5.py": ("t5",),
    "data/masked_lm.py": ("bert",),
    "data/span_corruption.py": ("t5",),
    "runtime/sampling.py": ("gpt", "t5"),
    "runtime/fill_mask.py": ("bert",),
    "runtime/seq2seq.py": ("t5",),
    "exporters/gguf.py": ("gpt",),
    "importers": ("gpt",),  # make import: published Llama-family checkpoints
    "models/hf_layout.py": ("gpt",),
    "models/lora.py": ("gpt",),
    "exporters/cog_predictor.py": ("gpt",),
    "exporters/cog_fill_mask.py": ("bert",),
    "exporters/cog_text2text.py": ("t5",),
    "chat.py": ("gpt", "t5"),
    "tests/test_model.py": ("gpt",),
    "tests/test_generate.py": ("gpt",),
    "tests/test_chat.py": ("gpt",),
    "tests/test_export.py": ("gpt",),  # LlamaForCausalLM, GGUF (bert, t5: their own test file)
    "tests/test_import.py": ("gpt",),
    "tests/test_lora.py": ("gpt",),
    "tests/test_bert.py": ("bert",),
    "tests/test_t5.py": ("t5",),
    # Instruction tuning (make finetune): for models that write answers, not for an encoder.
    "training/finetune.py": ("gpt", "t5"),
    "runtime/chat_tuning.py": ("gpt", "t5"),
    "data/finetune.py": ("gpt", "t5"),
    "corpus/conversations.py": ("gpt", "t5"),
    "corpus/instructions.py": ("gpt", "t5"),
    "tokenizer/chat_format.py": ("gpt", "t5"),
    "tokenizer/chat_template.jinja": ("gpt", "t5"),
    "tests/test_finetune.py": ("gpt", "t5"),
}


# The files of each plugin: a project keeps those of the plugins it was created with.
PLUGIN_FILES = {
    "wandb": ["plugins/wandb.py", "tests/test_plugin_wandb.py"],
    "huggingface": ["plugins/huggingface.py", "tests/test_plugin_huggingface.py"],
    "synthex": ["plugins/synthex.py", "data/synthex_prompts.txt", "tests/test_plugin_synthex.py"],
}


def chosen_plugins(answers: dict) -> set:
    """The plugins answer ('wandb, synthex'), checked by the pre-gen hook, as a set."""
    return {name.strip() for name in answers["plugins"].split(",") if name.strip()}


def pruned_paths(answers: dict) -> list[str]:
    """The paths (relative to the project, '/'-separated) these answers do not need."""
    paths = ["LICENSE"] if answers["license"] == "None" else []
    model = answers.get("model", "gpt")
    paths += [path for path, models in ARCHITECTURE_FILES.items() if model not in models]
    chosen = chosen_plugins(answers)
    for name, files in PLUGIN_FILES.items():
        if name not in chosen:
            paths += files
    return paths


def prune(project_dir: str, paths: list[str]) -> None:
    """Delete each path (file or directory) under project_dir; a missing one is a template bug."""
    for path in paths:
        full = os.path.join(project_dir, *path.split("/"))
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.remove(full)  # FileNotFoundError names the stale path


def remove_caches(project_dir: str) -> None:
    for root, dirs, _ in os.walk(project_dir):
        for name in [d for d in dirs if d in CACHE_DIRS]:
            shutil.rmtree(os.path.join(root, name))
            dirs.remove(name)


def replay_answers(context: dict) -> dict:
    """The part of the context worth keeping in .cookiecutter.json (see the module docstring)."""
    answers = {key: value for key, value in context.items() if not key.startswith("_")}
    template = context.get("_template")
    if isinstance(template, str) and REMOTE_TEMPLATE.match(template):
        answers["_template"] = template
        if context.get("_checkout"):
            answers["_checkout"] = context["_checkout"]
    return answers


def write_replay_file(project_dir: str, context: dict) -> None:
    path = os.path.join(project_dir, ".cookiecutter.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"cookiecutter": replay_answers(context)}, f, indent=2, ensure_ascii=False)
        f.write("\n")


def next_steps(slug: str, steps: list[list[str]]) -> str:
    """Plain cookiecutter installs nothing, so: every step but the last (`make generate`)."""
    steps = steps[:-1]
    width = max(len(command) for command, _ in steps) + 3
    lines = [f"Created {slug}. Next steps:", f"  {'cd ' + slug:<{width}}go into the project"]
    lines += [f"  {command:<{width}}{what}" for command, what in steps]
    lines.append("Run `make help` in the project for every other command.")
    return "\n".join(lines)


def main() -> None:
    project_dir = os.getcwd()  # cookiecutter runs post-gen hooks inside the new project
    prune(project_dir, pruned_paths(CONTEXT))
    remove_caches(project_dir)
    write_replay_file(project_dir, CONTEXT)
    if not os.environ.get("CREATE_LLM_WRAPPER"):
        print(next_steps(CONTEXT["project_slug"], CONTEXT["_next_steps"]))


if __name__ == "__main__":
    main()
