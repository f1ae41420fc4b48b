"""One set of numbers: the presets in cookiecutter.json, the generated project's models/config.py,
and the parameter counts the wrapper shows must all agree with the real architecture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from create_llm.presets import architecture, parameter_count

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "{{cookiecutter.project_slug}}"
COOKIECUTTER = json.loads((ROOT / "cookiecutter.json").read_text())
ARCH_KEYS = ("vocab_size", "dim", "layers", "heads", "kv_heads", "mlp_dim", "max_length")


def project_presets() -> dict:
    """models.config.PRESETS and the meta-device parameter counts, read in a subprocess."""
    code = (
        "import json, dataclasses\n"
        "from models.config import PRESETS, ModelConfig, count_parameters\n"
        "counts = {n: count_parameters(ModelConfig.from_preset(n)) for n in PRESETS}\n"
        "print(json.dumps({'presets': PRESETS, 'counts': counts}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def project() -> dict:
    return project_presets()


@pytest.mark.parametrize("name", ["nano", "tiny", "small", "base"])
def test_cookiecutter_presets_match_the_model_code(project: dict, name: str) -> None:
    ours = COOKIECUTTER["_presets"][name]
    assert {k: ours[k] for k in ARCH_KEYS} == {k: project["presets"][name][k] for k in ARCH_KEYS}


@pytest.mark.parametrize("name", ["nano", "tiny", "small", "base"])
def test_wrapper_parameter_count_is_the_real_one(project: dict, name: str) -> None:
    arch = architecture(name, COOKIECUTTER["_presets"], {})
    assert parameter_count(arch) == project["counts"][name]
