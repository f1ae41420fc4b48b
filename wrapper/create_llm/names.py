"""Project name -> folder name, and what makes a folder name acceptable.

The same rules are in hooks/pre_gen_project.py (hooks may not import the wrapper); a test checks
that both accept and refuse the same names, and that derive_slug() matches the project_slug
expression in cookiecutter.json.
"""

import re

from create_llm.errors import CreateLLMError

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
MAX_SLUG_LENGTH = 64
JINJA_MARKERS = ("{{", "{%", "{#")  # what opens a Jinja expression, statement or comment


def derive_slug(name: str) -> str:
    """Mirror of cookiecutter.json: `project_name | lower | trim | replace(' ', '-') | ...`."""
    return name.lower().strip().replace(" ", "-").replace("_", "-")


def slug_problem(slug: str) -> str | None:
    """Why `slug` cannot be a project folder name, or None when it can."""
    if not slug:
        return "the project folder name is empty"
    if len(slug) > MAX_SLUG_LENGTH:
        return f"the project folder name is longer than {MAX_SLUG_LENGTH} characters"
    if not SLUG_PATTERN.fullmatch(slug):
        return (
            f"{slug!r} cannot be the project folder name: use lowercase letters, digits, '-' or "
            "'_', starting with a letter"
        )
    return None


def check_project_name(name: str) -> str:
    """Validate NAME from the command line and return its folder name (slug)."""
    if "/" in name or "\\" in name or name.strip() in (".", ".."):
        raise CreateLLMError(
            f"the project name {name!r} is a path; it must be a plain name.",
            "Give a plain name and choose where it goes with --output-dir, e.g. "
            "create-llm my-llm -o ../projects",
        )
    slug = derive_slug(name)
    problem = slug_problem(slug)
    if problem:
        raise CreateLLMError(f"{problem}.", "Use a name like my-llm.")
    return slug


def check_plain_text(key: str, value: str) -> None:
    """Cookiecutter renders every answer as a Jinja template: refuse values that would be run."""
    if any(marker in value for marker in JINJA_MARKERS):
        raise CreateLLMError(
            f"{key} contains template braces ({{{{, {{%, or {{#), which the template engine "
            "would evaluate.",
            f"Remove the braces from {key}.",
        )
