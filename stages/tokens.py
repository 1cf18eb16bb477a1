"""Stage `tokens`: corpus -> fixed-length token rows (a datasets.Dataset per split) for sparsify."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import pandas as pd

from r1interp import data, paths, stage
from r1interp.models import check_vocab, model_spec, read_architecture
from r1interp.schemas import CorpusSchema, read_parquet

CORPUS = paths.CORPUS_PARQUET


def main(params, args):
    from transformers import AutoTokenizer

    corpus = read_parquet(CORPUS, CorpusSchema, rebuild_hint="run `dvc repro corpus`")
    spec = model_spec(params.model.profile, params.tokens.tokenizer_of)
    arch = read_architecture(spec.local_dir)
    tokenizer = AutoTokenizer.from_pretrained(spec.local_dir)
    check_vocab(tokenizer, arch, str(spec.local_dir))
    budgets = {"train": params.tokens.max_train_tokens, "heldout": params.tokens.max_heldout_tokens}
    for split, budget in budgets.items():
        docs = corpus[corpus["split"] == split].reset_index(drop=True)
        streams = data.tokenize_documents(list(docs["text"]), tokenizer, budget)
        if params.tokens.packing == "pad":
            rows, truncated = data.pad_rows(streams, params.tokens.ctx_len, tokenizer.pad_token_id)
        else:
            rows, truncated = data.pack_rows(streams, params.tokens.ctx_len), 0
        meta = {
            "split": split,
            "rows": int(rows["input_ids"].shape[0]),
            "ctx_len": params.tokens.ctx_len,
            "tokens": int(rows["input_ids"].size),
            "vocab_size": arch.vocab_size,
            "tokenizer": str(spec.local_dir),
            "packing": params.tokens.packing,
            "truncated_documents": truncated,
            "padding_fraction": round(float((rows["input_ids"] == tokenizer.pad_token_id).mean()), 4),
            "think_fraction": round(float(rows["in_think"].mean()), 4),
            "answer_fraction": round(float(rows["in_answer"].mean()), 4),
        }
        documents = pd.DataFrame({"doc_index": range(len(docs)), "id": docs["id"], "task": docs["task"]})
        data.write_token_split(paths.token_split(split), rows, documents, meta)
        print(
            f"tokens {split}: {meta['rows']} rows x {meta['ctx_len']} = {meta['tokens']} tokens "
            f"({params.tokens.packing}; padding {meta['padding_fraction']:.0%}, truncated documents {truncated})"
        )


if __name__ == "__main__":
    stage.run(main)
