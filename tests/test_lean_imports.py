"""Start-up costs paid by every stage and every DVC command: transformers loads without scikit-learn once r1interp
is imported (r1interp/lean_imports.py) and our own scikit-learn imports still work; DVC's YAML loader has its C
parser (bench/stage_imports.py and bench/dvc_yaml.py measure both)."""

from __future__ import annotations

import json
import subprocess
import sys

import r1interp  # noqa: F401  installs the hook, as every stage does first
from r1interp import lean_imports

PROBE = """
import json, sys
import r1interp
from transformers import AutoTokenizer, Qwen2ForCausalLM  # what the stages load
import transformers.generation.candidate_generator as generation
import transformers.utils.import_utils as flags
loaded = "sklearn" in sys.modules
from sklearn.metrics import roc_curve  # our own import still works afterwards
print(json.dumps({"sklearn_loaded_by_transformers": loaded, "flag": flags._sklearn_available,
                  "roc_curve_in_transformers": hasattr(generation, "roc_curve"), "ours": roc_curve.__name__}))
"""


def test_transformers_loads_without_sklearn_and_ours_still_imports():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {
        "sklearn_loaded_by_transformers": False,
        "flag": False,
        "roc_curve_in_transformers": False,
        "ours": "roc_curve",
    }


def hooks() -> list:
    return [f for f in sys.meta_path if isinstance(f, lean_imports._TransformersWithoutSklearn)]


def test_install_registers_one_hook_however_often_it_is_called(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if f not in hooks()])
    monkeypatch.delitem(sys.modules, lean_imports.TRANSFORMERS_FLAGS, raising=False)
    lean_imports.install()
    lean_imports.install()
    assert len(hooks()) == 1


def test_install_is_a_no_op_once_transformers_is_loaded(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if f not in hooks()])
    monkeypatch.setitem(sys.modules, lean_imports.TRANSFORMERS_FLAGS, object())
    lean_imports.install()
    assert hooks() == []


def test_the_hook_answers_only_for_transformers_flags_module():
    hook = lean_imports._TransformersWithoutSklearn()
    assert hook.find_spec("json", None) is None
    assert hook.find_spec("transformers.utils", None) is None


def test_dvc_reads_yaml_with_ruamels_c_parser_and_gets_the_same_values():
    from ruamel.yaml import YAML

    from helpers import REPO

    fast = YAML(typ="safe")  # what dvc.utils.serialize.parse_yaml builds for params.yaml, dvc.yaml and dvc.lock
    assert fast.Parser.__name__ == "CParser", "ruamel.yaml.clib is missing: every dvc command parses in Python"
    for name in ("params.yaml", "dvc.yaml", "dvc.lock"):
        text = (REPO / name).read_text()
        assert fast.load(text) == YAML(typ="safe", pure=True).load(text), name
