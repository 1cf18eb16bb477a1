"""A small byte-level BPE tokenizer built locally, with Qwen2's pre-tokenizer split.

Qwen2 splits every digit into its own token (`\\p{N}` matches one character), which
is what lets column-wise arithmetic be learned at all; we keep that split exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from r1interp import chat

# Qwen2's pre-tokenizer pattern (from its tokenizer.json), digits one by one.
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(chat.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=chat.BOS,
        eos_token=chat.EOS,
        pad_token=chat.PAD,
        additional_special_tokens=[chat.USER, chat.ASSISTANT, chat.THINK_OPEN, chat.THINK_CLOSE],
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
        model_input_names=["input_ids", "attention_mask"],
    )
    fast.chat_template = chat.CHAT_TEMPLATE
    return fast
