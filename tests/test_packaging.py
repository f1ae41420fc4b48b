"""The wheel ships the template, and an installed create-llm scaffolds from its own copy.

Builds the sdist and, from it, the wheel (hatchling, no isolation: no network), installs the
wheel with --no-deps into a fresh venv that borrows this interpreter's packages through a .pth
file (so nothing, torch least of all, is downloaded), and runs its `create-llm`.

    .venv/bin/python -m pytest tests/test_packaging.py -q
"""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import CACHE_DIRS, PROJECT_TEMPLATE, REPO_ROOT, tree_contents, tree_files


def run(*args: str | Path, cwd: Path | None = None, env: dict | None = None) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, check=False)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


# One pytest-xdist worker runs this file (make test: --dist loadgroup): one build of the wheel.
pytestmark = pytest.mark.xdist_group("packaging")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    # The default (sdist, then the wheel from the unpacked sdist) proves the sdist is complete.
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, REPO_ROOT)
    (wheel,) = dist.glob("create_llm-*.whl")
    assert list(dist.glob("create_llm-*.tar.gz"))
    return wheel


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A venv with the wheel installed; returns its bin/ directory."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                   .strip())
    # Borrow cookiecutter, typer, rich from this interpreter; they come after the venv's own
    # site-packages on sys.path, so the installed create_llm wins over any other copy.
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "borrowed-dev-packages.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
        "--no-index", "--disable-pip-version-check", "--quiet", wheel)
    return bin_dir


def test_wheel_carries_the_whole_template_and_no_caches(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    prefix = "create_llm/template/"
    shipped = {n[len(prefix):] for n in names if n.startswith(prefix)}
    assert {"cookiecutter.json", "hooks/pre_gen_project.py", "hooks/post_gen_project.py"} <= \
        shipped
    project = {f"{{{{cookiecutter.project_slug}}}}/{name}" for name in tree_files(PROJECT_TEMPLATE)}
    assert project <= shipped
    assert not [n for n in names if CACHE_DIRS & set(n.split("/")) or n.endswith(".pyc")]
    assert "create_llm/cli.py" in names


def test_installed_command_uses_its_own_template(installed, tmp_path):
    python = installed / "python"
    where = run(python, "-c", "from create_llm.template import find_template; "
                              "print(find_template())").strip()
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    assert Path(where) == Path(site) / "create_llm" / "template"
    assert run(installed / "create-llm", "--version").startswith("create-llm ")

    work = tmp_path / "work"
    work.mkdir()
    run(installed / "create-llm", "my-llm", "-t", "nano", "--yes", "--skip-install", "--no-git",
        cwd=work, env={"CI": "true"})
    reference = tmp_path / "reference"
    run(sys.executable, "-m", "cookiecutter", REPO_ROOT, "--no-input", "preset=nano",
        "-o", reference)
    assert tree_contents(work / "my-llm") == tree_contents(reference / "my-llm")
