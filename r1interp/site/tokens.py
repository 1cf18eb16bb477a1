"""Token windows as HTML: the vocabulary, and a window with the feature's activation on every token.

Tokens are decoded one id at a time (`vocab.vocabulary`), exactly as the labels stage showed them to the
labeler, so what a reader sees is what the label was made from. Whitespace is made visible (a
newline is the token the model saw, not a line break) and the activation is the background opacity.
"""

from __future__ import annotations

import re
from pathlib import Path

from r1interp.errors import ArtifactError
from r1interp.site.html import esc

_SPECIAL = re.compile(r"^<[^<>\s]+>$")  # <think>, </think>, <｜User｜>, ...
_VISIBLE = str.maketrans({"\n": "↵", "\t": "⇥", "\r": "␍"})


def load_vocab(model_dir: Path) -> list[str] | None:
    """Every token of the model's tokenizer as a string, or None when the model is not built yet."""
    if not (model_dir / "tokenizer_config.json").is_file():
        return None
    from r1interp.vocab import vocabulary

    try:
        return vocabulary(model_dir)
    except Exception as exc:  # tokenizers raise several types for a broken tokenizer.json
        raise ArtifactError(f"{model_dir}: tokenizer cannot be loaded ({type(exc).__name__}: {exc})") from None


def token_text(vocab: list[str] | None, token_id: int) -> str:
    if vocab is None or not 0 <= token_id < len(vocab):
        return f"⟨{token_id}⟩"
    return vocab[token_id]


_DEEPSEEK = re.compile(r"^<｜(.+)｜>$")  # R1's chat tokens, e.g. <｜begin▁of▁sentence｜>
_DEEPSEEK_ANY = re.compile(r"<｜([^｜<>]+)｜>")
_SHORT = {"begin▁of▁sentence": "bos", "end▁of▁sentence": "eos"}


def visible(token: str) -> str:
    return token.translate(_VISIBLE)


def readable(text: str) -> str:
    """Labels quote tokens; show R1's chat tokens in them as in the windows (`‹eos›`)."""
    return _DEEPSEEK_ANY.sub(lambda m: f"‹{_SHORT.get(m.group(1), m.group(1))}›", text)


def short(token: str) -> str:
    """How a token is shown in a window: whitespace visible, R1's long chat tokens abbreviated
    (`<｜begin▁of▁sentence｜>` -> `‹bos›`, `<｜User｜>` -> `‹User›`): a window stays one readable line."""
    m = _DEEPSEEK.match(token)
    if m:
        return f"‹{_SHORT.get(m.group(1), m.group(1))}›"
    return visible(token)


def render_window(tokens: list[str], acts, scale: float, target: int) -> str:
    """One example window. Active tokens are <b> with an orange background of opacity act/scale and a
    hover title with the value; the sampled token (`target`) is outlined (class t, or <u> when silent);
    special tokens are greyed (<i>).

    Silent tokens are plain text and attribute values are unquoted where HTML allows: this markup is most
    of a feature page's bytes, and a 32-token window then costs ~0.3 kB.
    """
    out = []
    inv = 1.0 / scale if scale > 0 else 0.0
    for i, (tok, a) in enumerate(zip(tokens, acts.tolist() if hasattr(acts, "tolist") else acts, strict=True)):
        shown = esc(short(tok))
        if a > 0:
            alpha = f"{min(1.0, a * inv):.2f}".lstrip("0") if inv else "1"
            cls = " class=t" if i == target else ""
            out.append(f"<b{cls} style=--a:{alpha} title={a:.3g}>{shown}</b>")
        elif i == target:
            out.append(f"<u>{shown}</u>")
        elif _SPECIAL.match(tok):
            out.append(f"<i>{shown}</i>")
        else:
            out.append(shown)
    return "".join(out)
