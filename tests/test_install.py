"""Installing the generated project's .venv: the plan, the runner, and (slow) the real thing.

    .venv/bin/python -m pytest tests/test_install.py -q            # ~50 s on 2 cores
    .venv/bin/python -m pytest tests/test_install.py -m "not slow"  # plan + runner only

The slow test installs TORCH_SPEC (default: the torch of this interpreter, exactly) and then
requirements.txt into <project>/.venv, as `create-llm` does without --skip-install.
"""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from create_llm import cli, install
from create_llm.errors import CreateLLMError


def test_pip_plan_installs_torch_first_then_requirements_pinned_to_it(tmp_path):
    steps = install.install_steps(tmp_path, "torch==2.13.0", "/usr/bin/python3", uv=None)
    venv_python = str(tmp_path / ".venv" / "bin" / "python")
    assert steps[0].argv == ["/usr/bin/python3", "-m", "venv", str(tmp_path / ".venv")]
    assert steps[1].argv[:4] == [venv_python, "-m", "pip", "install"]
    assert steps[1].argv[-1] == "torch==2.13.0"
    requirements = steps[2].argv
    assert requirements[requirements.index("-r") + 1] == "requirements.txt"
    assert requirements[requirements.index("-c") + 1] == str(
        tmp_path / ".venv" / install.CONSTRAINTS_FILE)


def test_uv_plan_and_torch_spec_with_options(tmp_path):
    spec = "torch --index-url https://download.pytorch.org/whl/cpu"
    steps = install.install_steps(tmp_path, spec, "/usr/bin/python3", uv="/bin/uv")
    assert steps[0].argv[:3] == ["/bin/uv", "venv", "--seed"]
    assert steps[1].argv[-3:] == ["torch", "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert steps[2].argv[:3] == ["/bin/uv", "pip", "install"] and "-c" in steps[2].argv


def test_runner_reports_each_step_and_pins_torch_between(tmp_path, monkeypatch):
    ran, lines = [], []
    monkeypatch.setattr(install, "run_step", lambda step, cwd: ran.append(step.done))
    monkeypatch.setattr(install, "pin_installed_torch", lambda venv: ran.append("pin"))
    install.install(tmp_path, "torch", report=lines.append)
    assert ran == ["Created .venv", "Installed torch", "pin", "Installed requirements.txt"]
    assert len(lines) == 3 and "Installed requirements.txt" in lines[-1]


@pytest.mark.parametrize("failure", [CreateLLMError("pip failed", "fix it"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_install_removes_the_half_made_venv(tmp_path, monkeypatch,
                                                                    failure):
    def run_step(step, cwd):
        (tmp_path / ".venv").mkdir(exist_ok=True)
        if step.done != "Created .venv":
            raise failure

    monkeypatch.setattr(install, "run_step", run_step)
    with pytest.raises(type(failure)):
        install.install(tmp_path, "torch", report=lambda line: None)
    assert not (tmp_path / ".venv").exists()


def test_a_failing_command_names_itself_and_suggests_make_setup(tmp_path):
    fail = [sys.executable, "-c", "raise SystemExit(3)"]
    step = install.Step("Installing x", "Installed x", fail)
    with pytest.raises(CreateLLMError) as caught:
        install.run_step(step, tmp_path)
    assert "installing x failed" in caught.value.message
    assert "make setup" in caught.value.suggestion


def test_interrupted_install_keeps_the_complete_project(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(install, "install", interrupted)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["my-llm", "--yes", "--no-git"])
    assert result.exit_code == 130
    assert "make setup" in result.output
    assert (tmp_path / "my-llm" / "llm.config.js").is_file()


@pytest.mark.slow
def test_real_install_into_the_project_venv(tmp_path, monkeypatch):
    torch_spec = os.environ.get("TORCH_SPEC") or f"torch=={importlib.metadata.version('torch')}"
    monkeypatch.setenv("TORCH_SPEC", torch_spec)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["my-llm", "-t", "nano", "--yes", "--no-git"])
    assert result.exit_code == 0, result.output
    assert "Installed requirements.txt" in result.output
    venv_python = Path("my-llm/.venv/bin/python")
    probe = ("import torch, numpy, tokenizers, json5, tqdm; import importlib.metadata as m; "
             "print(m.version('torch'))")
    version = subprocess.run([venv_python, "-c", probe], capture_output=True, text=True,
                             check=True).stdout.strip()
    pinned = Path("my-llm/.venv", install.CONSTRAINTS_FILE).read_text().strip()
    assert pinned == f"torch=={version}"
    if "==" in torch_spec:  # the exact torch asked for, never another one pip preferred
        assert version.split("+")[0] == torch_spec.split("==")[1].split("+")[0]
