"""The model organisms: tiny Qwen2 models trained on synthetic R1-style reasoning.

`base` learns to answer directly (answers only); `reasoner` is the base fine-tuned on
`<think>` traces, as DeepSeek-R1-Distill-Qwen is Qwen2.5-Math fine-tuned on R1 traces.

The package itself imports nothing: `tasks` (the problem generator, pure Python) is imported by stages that
never touch a model, and should not pay for torch and transformers. The trainers are in `build`.
"""
