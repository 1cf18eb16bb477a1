"""The vocabulary as strings, read without transformers where that gives transformers' own strings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from r1interp.models import token_strings
from r1interp.vocab import _from_backend, vocabulary


@pytest.fixture
def model_dir(tokenizer, tmp_path) -> Path:
    tokenizer.save_pretrained(tmp_path)
    return tmp_path


def _edit_config(model_dir: Path, **changes) -> None:
    path = model_dir / "tokenizer_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def test_the_organism_tokenizer_is_read_from_its_backend_with_transformers_strings(model_dir):
    expected = token_strings(AutoTokenizer.from_pretrained(model_dir))
    assert _from_backend(model_dir) == expected
    assert vocabulary(model_dir) == expected
    assert len(expected) == len(AutoTokenizer.from_pretrained(model_dir)) and "<think>" in expected


def test_reading_the_vocabulary_loads_neither_transformers_nor_torch(model_dir):
    code = (
        "import sys; from r1interp.vocab import vocabulary; "
        f"v = vocabulary({str(model_dir)!r}); "
        "print(len(v), 'transformers' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(token_strings(AutoTokenizer.from_pretrained(model_dir)))), "False", "False"]


@pytest.mark.parametrize(
    "changes",
    [
        {"tokenizer_class": "LlamaTokenizerFast"},  # a subclass may load differently
        {"clean_up_tokenization_spaces": True},  # transformers would rewrite " ," and the like
    ],
)
def test_other_tokenizers_go_through_transformers(model_dir, changes):
    _edit_config(model_dir, **changes)
    assert _from_backend(model_dir) is None
    assert vocabulary(model_dir) == token_strings(AutoTokenizer.from_pretrained(model_dir))


def test_an_added_token_the_backend_lacks_goes_through_transformers(model_dir):
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    added = dict(config["added_tokens_decoder"])
    first = next(iter(added.values()))
    added[str(10_000)] = first | {"content": "<not-in-the-backend>"}
    _edit_config(model_dir, added_tokens_decoder=added)
    assert _from_backend(model_dir) is None


def test_without_tokenizer_json_it_goes_through_transformers(model_dir):
    (model_dir / "tokenizer.json").unlink()
    assert _from_backend(model_dir) is None


def test_tokens_added_to_the_backend_are_part_of_the_vocabulary(model_dir):
    from tokenizers import AddedToken, Tokenizer

    backend = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    size = backend.get_vocab_size(with_added_tokens=True)
    backend.add_tokens([AddedToken("<extra-token>", special=False)])
    backend.save(str(model_dir / "tokenizer.json"))
    expected = token_strings(AutoTokenizer.from_pretrained(model_dir))
    assert len(expected) == size + 1 and expected[-1] == "<extra-token>"
    assert _from_backend(model_dir) == expected
