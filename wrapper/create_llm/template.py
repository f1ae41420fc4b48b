"""Where the cookiecutter template is, and what its cookiecutter.json says.

The wheel carries a copy of the template under create_llm/template/ (pyproject.toml force-includes
cookiecutter.json, hooks/ and the project folder); a source checkout (or an editable install) has
none there and uses the repository root, two levels above this file.
"""

import json
from functools import cache
from pathlib import Path

from create_llm.errors import CreateLLMError

PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED_TEMPLATE = PACKAGE_DIR / "template"
CHECKOUT_TEMPLATE = PACKAGE_DIR.parent.parent  # wrapper/create_llm/ -> repository root


def is_template(path: Path) -> bool:
    return (path / "cookiecutter.json").is_file() and (path / "hooks").is_dir()


def find_template() -> Path:
    """The installed copy first, then the source checkout."""
    for candidate in (INSTALLED_TEMPLATE, CHECKOUT_TEMPLATE):
        if is_template(candidate):
            return candidate
    raise CreateLLMError(
        f"the project template is missing (looked in {INSTALLED_TEMPLATE} and "
        f"{CHECKOUT_TEMPLATE}).",
        "Reinstall create-llm: pip install --force-reinstall create-llm",
    )


@cache
def template_context() -> dict:
    """cookiecutter.json as a dict: questions, defaults, __prompts__ and the private _presets."""
    path = find_template() / "cookiecutter.json"
    return json.loads(path.read_text(encoding="utf-8"))
