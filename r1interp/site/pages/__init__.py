"""One module per page type; each reads its inputs through `Context.inputs` and writes its page(s)."""
