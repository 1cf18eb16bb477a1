"""A model's vocabulary as strings (every token id decoded on its own, `models.token_strings`), read from its
directory without loading transformers where that gives the same strings.

The labels and report stages need nothing else from the tokenizer. Importing transformers (and torch with it)
is most of such a stage's start-up (about 4 s of an 11 s labels stage on the tiny profile, measured here), and
transformers' generic fast tokenizer, `PreTrainedTokenizerFast`, decodes with its `tokenizers` backend alone
(then cleans up spaces only when the config asks for it). The organisms' tokenizers are of that class, so their
vocabulary is read from tokenizer.json directly. Any other tokenizer class may change how it is loaded (e.g.
Llama's prefix-space handling), so the real profile's tokenizers go through transformers as before.
"""

from __future__ import annotations

import json
from pathlib import Path

GENERIC_FAST = "PreTrainedTokenizerFast"


def vocabulary(model_dir: Path) -> list[str]:
    """Every token id of the tokenizer in `model_dir`, decoded on its own, as transformers would decode it."""
    model_dir = Path(model_dir)
    strings = _from_backend(model_dir)
    if strings is not None:
        return strings
    from transformers import AutoTokenizer

    from r1interp.models import token_strings

    return token_strings(AutoTokenizer.from_pretrained(model_dir))


def _from_backend(model_dir: Path) -> list[str] | None:
    """The vocabulary from tokenizer.json alone, or None where transformers could decode differently."""
    config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    backend = model_dir / "tokenizer.json"
    if (
        config.get("tokenizer_class") != GENERIC_FAST
        or config.get("clean_up_tokenization_spaces")
        or not backend.is_file()
    ):
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(backend))
    # transformers adds the config's added tokens the backend lacks; then ids could differ
    added = config.get("added_tokens_decoder") or {}
    if any(tokenizer.token_to_id(token["content"]) != int(i) for i, token in added.items()):
        return None
    return [tokenizer.decode([i], skip_special_tokens=False) for i in range(tokenizer.get_vocab_size(True))]
