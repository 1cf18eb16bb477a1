"""circuit-tracer on a tiny real Qwen2 with real sparsify coders: loading, TopK, attribution faithfulness,
Neuronpedia export and its schema, and the choice of think/answer targets."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch

from r1interp import chat
from r1interp.errors import ArtifactError
from r1interp.graphs import faithfulness
from r1interp.graphs.export import neuronpedia_document, write_graph
from r1interp.graphs.replacement import check_transcoder_set, load_replacement_model
from r1interp.graphs.schema import read_graph, validate_graph
from r1interp.graphs.targets import Trace, find_targets, generate_trace, grade, prompt_prefix
from r1interp.motifs.graph import load_neuronpedia
from r1interp.prompts import BenchmarkPrompt
from r1interp.transcoders.layout import write_circuit_tracer_config, write_circuit_tracer_layer
from r1interp.transcoders.splice import coder_forward

K, LATENTS = 4, 64


def _coder(d: int, seed: int, d_out: int | None = None):
    from sparsify import SparseCoder, SparseCoderConfig

    torch.manual_seed(seed)
    coder = SparseCoder(d, SparseCoderConfig(num_latents=LATENTS, k=K, transcode=True, skip_connection=True))
    with torch.no_grad():
        for p in coder.parameters():
            p.normal_(0, 0.2)
    return coder.eval()


def _save_set(root, coders, k=K):
    sparsify_root, ct = root / "sparsify", root / "circuit-tracer"
    files = {}
    for layer, coder in coders.items():
        coder.save_to_disk(sparsify_root / f"layers.{layer}.mlp")
        write_circuit_tracer_layer(sparsify_root / f"layers.{layer}.mlp", ct / f"layer_{layer}.safetensors")
        files[layer] = f"layer_{layer}.safetensors"
    write_circuit_tracer_config(ct, files, scan="test/tiny", k=k)
    return ct


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tokenizer, tiny_model_kwargs):
    from r1interp.organism.train import build_model

    root = tmp_path_factory.mktemp("graphs")
    torch.manual_seed(0)
    model = build_model(len(tokenizer), **tiny_model_kwargs).eval()
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    d = model.config.hidden_size
    coders = {layer: _coder(d, seed=layer) for layer in range(model.config.num_hidden_layers)}
    ct = _save_set(root / "set", coders)
    rm = load_replacement_model(model_dir, ct)
    text = chat.prompt_text("What is 47+85?") + "<think>\nones: 7+5="
    ids = torch.tensor(tokenizer(text, add_special_tokens=False).input_ids)
    return {"root": root, "model": model, "model_dir": model_dir, "coders": coders, "ct": ct, "rm": rm, "ids": ids}


@pytest.fixture(scope="module")
def graph(tiny):
    from circuit_tracer import attribute

    return attribute(
        tiny["ids"], tiny["rm"], max_n_logits=3, desired_logit_prob=0.9, batch_size=16, max_feature_nodes=80
    )


def test_replacement_model_reproduces_sparsify_and_the_model(tiny):
    rm, ids = tiny["rm"], tiny["ids"]
    x = torch.randn(7, tiny["model"].config.hidden_size)
    for layer, coder in tiny["coders"].items():
        expected, _, _ = coder_forward(coder, x)
        got = rm.transcoders.transcoders[layer](x)
        assert torch.allclose(got, expected, atol=1e-5), layer
        acts = rm.transcoders.transcoders[layer].encode(x)
        assert ((acts > 0).sum(-1) <= K).all()  # TopK, not circuit-tracer's default ReLU
    with torch.no_grad():
        hf = tiny["model"](ids[None]).logits[0]
        tl = rm(ids[None])[0]
    assert torch.allclose(hf, tl, atol=1e-4)


def test_transcoder_set_must_fit_the_model(tiny, tmp_path):
    d = tiny["model"].config.hidden_size
    wrong_width = _save_set(tmp_path / "wide", {0: _coder(d + 8, 0), 1: _coder(d + 8, 1)})
    with pytest.raises(ArtifactError, match=f"does not match the model's hidden size {d}"):
        check_transcoder_set(tiny["model_dir"], wrong_width)
    one_layer = _save_set(tmp_path / "short", {0: _coder(d, 0)})
    with pytest.raises(ArtifactError, match="1 transcoder layers for a model with 2 layers"):
        load_replacement_model(tiny["model_dir"], one_layer)
    (one_layer / "config.yaml").unlink()
    with pytest.raises(ArtifactError, match="config.yaml: file not found"):
        check_transcoder_set(tiny["model_dir"], one_layer)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda ct: (ct / "layer_1.safetensors").write_bytes((ct / "layer_1.safetensors").read_bytes()[:-100]),
     r"layer_1.safetensors: not a readable safetensors file \(truncated or corrupt"),
    (lambda ct: (ct / "layer_0.safetensors").write_bytes(b"\x05"), r"layer_0.safetensors: not a readable safetensors file"),
    (lambda ct: (ct / "config.yaml").write_text("model_kind: [\n"), r"config.yaml: not valid YAML text"),
    (lambda ct: (ct / "config.yaml").write_text("42\n"), r"config.yaml: expected a mapping .* got int"),
    (lambda ct: (ct / "config.yaml").write_text((ct / "config.yaml").read_text().replace("layer_1.safetensors", "/etc/passwd")),
     r"config.yaml: layer file '/etc/passwd' is outside .*circuit-tracer; only files inside the set are read"),
    (lambda ct: (ct / "config.yaml").write_text((ct / "config.yaml").read_text().replace("layer_1.safetensors", "../../x")),
     r"config.yaml: layer file '../../x' is outside"),
    (lambda ct: (ct / "config.yaml").write_text("model_kind: x\nfeature_input_hook: a\nfeature_output_hook: b\n"
                                                "scan: s\ntranscoders: 7\n"), r"'transcoders' must be a list of layer file names"),
])  # fmt: skip
def test_a_broken_transcoder_set_fails_with_one_line_naming_the_file(tiny, tmp_path, mutate, message):
    import shutil

    ct = shutil.copytree(tiny["ct"], tmp_path / "set" / "circuit-tracer")
    check_transcoder_set(tiny["model_dir"], ct)  # the intact copy passes
    mutate(ct)
    with pytest.raises(ArtifactError, match=message):
        check_transcoder_set(tiny["model_dir"], ct)


def test_edge_weights_agree_with_patching(tiny, graph):
    from circuit_tracer.graph import compute_graph_scores

    replacement, completeness = compute_graph_scores(graph)
    assert 0 <= replacement <= 1 and 0 <= completeness <= 1
    rows = faithfulness.check_edges(tiny["rm"], graph, sources=4, edges_per_source=6, min_relative_weight=0.01, seed=0)
    assert len(rows) >= 8
    assert {r["target_kind"] for r in rows} <= {"feature", "logit"}
    summary = faithfulness.summarize(rows, tolerance=1e-3)
    assert summary["within_tolerance"], summary
    # the check can fail: a wrong sign or scale would be caught
    flipped = [{**r, "relative_error": abs(r["measured"] + r["attributed"]) / abs(r["attributed"])} for r in rows]
    assert not faithfulness.summarize(flipped, tolerance=1e-3)["within_tolerance"]


def test_export_has_unique_ids_labels_and_loads(tiny, graph, tokenizer, tmp_path):
    plain = neuronpedia_document(graph, "plain", tokenizer, node_threshold=1.0, edge_threshold=1.0)
    errors = {(n["ctx_idx"], n["layer"]) for n in plain["nodes"] if n["feature_type"] == "mlp reconstruction error"}
    # a kept layer-0 feature at a position that also has an error node of layer L: renumbered to feature L
    # circuit-tracer names it "0_L_{pos}", exactly like that error node (its own export duplicates the id)
    feature_node = next(
        n
        for n in plain["nodes"]
        if n["feature_type"] == "cross layer transcoder"
        and n["layer"] == "0"
        and any(pos == n["ctx_idx"] for pos, _ in errors)
    )
    pos = feature_node["ctx_idx"]
    err_layer = int(next(layer for p_, layer in sorted(errors) if p_ == pos))
    feat = int(feature_node["node_id"].split("_")[1])
    g = copy.deepcopy(graph)
    selected = g.active_features[g.selected_features]
    i = next(i for i, row in enumerate(selected.tolist()) if row == [0, pos, feat])
    g.active_features[g.selected_features[i], 2] = err_layer
    labels = {(0, err_layer): "fires on the plus sign"}
    doc = neuronpedia_document(
        g, "tiny-test", tokenizer, node_threshold=1.0, edge_threshold=1.0, labels=labels, info={"prompt_id": "x"}
    )
    ids = [n["node_id"] for n in doc["nodes"]]
    assert len(ids) == len(set(ids))
    collided = f"0_{err_layer}_{pos}"
    assert f"{collided}_err" in ids and doc["metadata"]["info"]["id_collisions"] >= 1
    raw = [i.removesuffix("_err") for i in ids]
    assert len(raw) > len(set(raw))  # without the renaming the ids would collide
    feature = next(n for n in doc["nodes"] if n["node_id"] == collided)
    assert feature["feature_type"] == "cross layer transcoder" and feature["clerp"] == "fires on the plus sign"
    path = tmp_path / "g.json"
    write_graph(path, doc)
    assert read_graph(path)["metadata"]["slug"] == "tiny-test"
    loaded = load_neuronpedia(path, drop_errors=False)
    assert loaded.n_nodes == len(doc["nodes"])
    assert loaded.kind_counts()["error"] == sum(n["feature_type"] == "mlp reconstruction error" for n in doc["nodes"])


def _valid_doc(graph, tokenizer):
    return neuronpedia_document(graph, "ok", tokenizer, node_threshold=0.8, edge_threshold=0.98)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("links"), "missing top-level field 'links'"),
        (
            lambda d: d["links"].append({"source": d["nodes"][0]["node_id"], "target": "nope", "weight": 1.0}),
            "target 'nope' is not a node",
        ),
        (lambda d: d["nodes"].append(dict(d["nodes"][0])), "duplicate node_id"),
        (lambda d: d["nodes"][0].__setitem__("ctx_idx", 999), "ctx_idx 999 outside"),
        (lambda d: d["links"][0].__setitem__("weight", float("nan")), "is not a finite number"),
        (lambda d: d["nodes"][0].pop("feature_type"), "field 'feature_type' is missing"),
        (lambda d: d["metadata"].pop("prompt_tokens"), "metadata.prompt_tokens is missing"),
    ],
)
def test_graph_schema_rejects_bad_documents_and_writes_nothing(graph, tokenizer, tmp_path, mutate, message):
    doc = _valid_doc(graph, tokenizer)
    validate_graph(doc, "ok.json")
    mutate(doc)
    path = tmp_path / "bad.json"
    with pytest.raises(ArtifactError, match=message):
        write_graph(path, doc)
    assert not path.exists()
    path.write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="bad.json"):
        read_graph(path)


def _trace(tokenizer, prompt: BenchmarkPrompt, completion: str, model: str = "reasoner") -> Trace:
    prefix = chat.prompt_text(prompt.prompt) + (prompt.prefill if model == "reasoner" else "")
    ids = tokenizer(prefix, add_special_tokens=False).input_ids
    new = tokenizer(completion, add_special_tokens=False).input_ids
    return Trace(prompt, model, ids, new, completion, grade(completion, prompt.expected, "The answer is "))


PROMPT = BenchmarkPrompt(
    id="carry-01", category="arithmetic_carry", prompt="What is 47+85?", expected="132", task="add", operands=(47, 85)
)


def test_targets_are_the_first_column_result_and_the_answer(tokenizer):
    completion = (
        "<think>\nones: 7+5=12, write 2, carry 1.\ntens: 4+8+1=13, write 3, carry 1.\n</think>\n\nThe answer is 132."
        + chat.EOS
    )
    trace = _trace(tokenizer, PROMPT, completion)
    assert trace.correct is True
    targets = {t.kind: t for t in find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ")}
    think, answer = targets["think"], targets["answer"]
    assert tokenizer.decode(list(think.input_ids)).endswith("ones: 7+5=")
    assert tokenizer.decode([think.target_token]) == "1"
    assert tokenizer.decode(list(answer.input_ids)).endswith("</think>\n\nThe answer is ")
    assert tokenizer.decode([answer.target_token]) == "1"
    assert think.slug == "reasoner-carry-01-think"


def test_targets_skip_with_reasons(tokenizer):
    # the question's own "+" and a "=" outside <think> must not count
    trace = _trace(tokenizer, PROMPT, "The answer is 131." + chat.EOS, model="base")
    targets = find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ")
    assert [t.kind for t in targets] == ["answer"] and trace.correct is False
    assert trace.skipped == {"think": "no <think> block"}
    prefilled = BenchmarkPrompt(**{**PROMPT.__dict__, "id": "b", "prefill": "<think>\n\n</think>\n\n"})
    trace = _trace(tokenizer, prefilled, "12 and more" + chat.EOS)
    assert find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ") == []
    assert trace.skipped == {"think": "no '=' inside <think>", "answer": "no 'The answer is ' in the answer"}


@pytest.mark.parametrize("completion, expected, result", [
    ("The answer is 132.", "132", True),
    ("The answer is 1320.", "132", False),
    ("The answer is 13.", "132", False),
    ("The answer is 5. Wait. The answer is 132.", "132", True),
    ("The answer is   132 ", "132", True),  # spaces after the anchor are skipped
    ("The answer is 132x", "132", False),
    ("no answer", "132", False),
    ("The answer is 7.", None, None),
    ("\\boxed{132}", "132", None),
])  # fmt: skip
def test_grade(completion, expected, result):
    if completion.startswith("\\boxed"):
        assert grade(completion, expected, "\\boxed{") is True
    else:
        assert grade(completion, expected, "The answer is ") is result


def test_prompt_longer_than_the_context_is_refused(tiny, tokenizer):
    long = BenchmarkPrompt(id="long", category="baseline", prompt="What is " + "1+" * 80 + "1?", expected=None)
    with pytest.raises(ArtifactError, match="do not fit the reasoner model's context of 64 positions"):
        generate_trace(
            tiny["model"],
            tokenizer,
            long,
            "reasoner",
            max_new_tokens=10,
            max_positions=64,
            answer_anchor="The answer is ",
        )


def test_prompts_that_do_not_fit_are_refused_before_any_graph(tokenizer):
    from r1interp.graphs.targets import check_prompts_fit

    long = BenchmarkPrompt(id="long", category="baseline", prompt="What is " + "1+" * 80 + "1?", expected=None)
    check_prompts_fit(tokenizer, [PROMPT], "reasoner", 64)
    with pytest.raises(ArtifactError, match="prompt 'long': .* do not fit the base model's context of 64 positions"):
        check_prompts_fit(tokenizer, [PROMPT, long], "base", 64)


R1_COMPLETION = (
    "<think>\nOkay, so I need to add 47 and 85. The ones give 12. The tens give 13.\n"
    "Wait, I forgot the carry. So 4+8+1=13.\n</think>\n\nThe answer is \\boxed{132}." + chat.EOS
)


def test_window_cuts_long_traces_at_a_sentence_start(tokenizer):
    trace = _trace(tokenizer, PROMPT, R1_COMPLETION)
    ids = trace.prompt_ids + trace.completion_ids
    whole = {t.kind: t for t in find_targets(tokenizer, trace, think_anchor="Wait", answer_anchor="\\boxed{")}
    assert tokenizer.decode([whole["answer"].target_token]) == "1" and whole["think"].window_start == 0
    for t in whole.values():  # without a window, the whole prefix
        assert list(t.input_ids) == ids[: len(t.input_ids)]
    window = 30
    cut = {t.kind: t for t in find_targets(tokenizer, trace, think_anchor="Wait", answer_anchor="\\boxed{",
                                           window_tokens=window)}  # fmt: skip
    for kind, t in cut.items():
        target_at = len(whole[kind].input_ids)
        assert t.target_token == whole[kind].target_token and len(t.input_ids) <= window
        assert t.window_start > 0 and list(t.input_ids) == [tokenizer.bos_token_id] + ids[t.window_start : target_at]
        opening = tokenizer.decode(ids[t.window_start : t.window_start + 3])
        assert opening.lstrip()[:1].isupper(), opening  # a sentence start, not mid-sentence
        # the earliest sentence start that fits: one sentence further back would not
        assert target_at - t.window_start <= window - 1
    assert tokenizer.decode(list(cut["think"].input_ids)[1:]).lstrip().startswith(("The", "Wait"))


def test_window_without_a_sentence_start_skips_with_the_reason(tokenizer):
    run_on = "<think>\n" + " ".join(["1+1+1+1"] * 12) + " Wait, no.\n</think>\n\nThe answer is \\boxed{2}." + chat.EOS
    trace = _trace(tokenizer, PROMPT, run_on)
    targets = find_targets(tokenizer, trace, think_anchor="Wait", answer_anchor="\\boxed{", window_tokens=8)
    assert "think" not in {t.kind for t in targets}
    assert trace.skipped["think"].startswith("no sentence starts within the graphs.window_tokens=8 tokens before")


@pytest.mark.parametrize("min_weight", [0.01, 0.001, 1.0])  # 0.001: a floor below 1; 1.0: only the largest edge
def test_edge_rows_are_the_strongest_edges_of_seeded_sources(tiny, graph, min_weight):
    """Every row is one of its source's strongest edges (rows: feature and logit targets), attributed = -A[t, s]
    exactly, with the relative error of its measurement; sources are distinct and drawn by the seed."""
    adj = graph.adjacency_matrix.float().cpu()
    n_features = len(graph.selected_features)
    logit_start = adj.shape[0] - len(graph.logit_targets)
    targets = list(range(n_features)) + list(range(logit_start, adj.shape[0]))
    block = adj[targets][:, :n_features]
    feats = [tuple(int(v) for v in f) for f in graph.active_features[graph.selected_features].tolist()]
    floor = min_weight * float(block.abs().max())
    eligible = int((block.abs() >= floor).any(dim=0).sum())
    rows = faithfulness.check_edges(
        tiny["rm"], graph, sources=1000, edges_per_source=8, min_relative_weight=min_weight, seed=3
    )  # every eligible source
    by_source: dict[int, list[dict]] = {}
    for r in rows:
        assert set(r) == {
            "source_layer",
            "source_pos",
            "source_feature",
            "target_kind",
            "target_node",
            "attributed",
            "measured",
            "relative_error",
        }
        s = feats.index((r["source_layer"], r["source_pos"], r["source_feature"]))
        by_source.setdefault(s, []).append(r)
        t = r["target_node"]
        assert r["target_kind"] == ("feature" if t < n_features else "logit")
        assert t < n_features or logit_start <= t < adj.shape[0]
        assert r["attributed"] == -float(adj[t, s]) and abs(r["attributed"]) >= floor
        assert r["relative_error"] == abs(r["measured"] - r["attributed"]) / abs(r["attributed"])
        assert r["relative_error"] < 1e-3  # the measurement agrees: it was not left out or mis-signed
    assert len(by_source) == eligible and list(by_source) == sorted(by_source)  # each source once, in node order
    if min_weight < 1:
        assert {r["target_kind"] for r in rows} == {"feature", "logit"}
    else:  # the floor is the largest edge itself: exactly that edge (>=, not >)
        assert len(rows) == 1 and abs(rows[0]["attributed"]) == float(block.abs().max())
    for s, mine in by_source.items():
        column = block[:, s]
        order = torch.argsort(column.abs(), descending=True)[:8].tolist()
        expected = [targets[r] for r in order if abs(float(column[r])) >= floor]
        assert [r["target_node"] for r in mine] == expected

    def sources_of(seed):
        got = faithfulness.check_edges(
            tiny["rm"], graph, sources=5, edges_per_source=1, min_relative_weight=0.01, seed=seed
        )
        return [(r["source_layer"], r["source_pos"], r["source_feature"]) for r in got]

    if min_weight < 1:
        five = sources_of(3)
        assert len(set(five)) == 5 and five == sources_of(3) and five != sources_of(4)  # distinct, seeded
    # a floor above every edge leaves nothing to check
    assert (
        faithfulness.check_edges(tiny["rm"], graph, sources=5, edges_per_source=8, min_relative_weight=1.01, seed=3)
        == []
    )


def test_faithfulness_summary_exact():
    assert faithfulness.summarize([], tolerance=0.1) == {
        "edges": 0,
        "max_relative_error": None,
        "median_relative_error": None,
        "tolerance": 0.1,
        "within_tolerance": None,
    }
    rows = [{"relative_error": e} for e in (0.05, 0.01, 0.1, 0.02)]
    assert faithfulness.summarize(rows, tolerance=0.1) == {
        "edges": 4,
        "max_relative_error": 0.1,
        "median_relative_error": pytest.approx(0.035),
        "tolerance": 0.1,
        "within_tolerance": True,
    }
    assert faithfulness.summarize(rows, tolerance=0.099)["within_tolerance"] is False
    assert faithfulness.summarize(rows[:3], tolerance=1.0)["median_relative_error"] == 0.05


def test_prompt_prefix_gives_the_prefill_to_the_reasoner_only():
    prefilled = BenchmarkPrompt(**{**PROMPT.__dict__, "prefill": "<think>\n\n</think>\n\n"})
    assert prompt_prefix(prefilled, "reasoner") == chat.prompt_text("What is 47+85?") + "<think>\n\n</think>\n\n"
    assert prompt_prefix(prefilled, "base") == chat.prompt_text("What is 47+85?")
    assert prompt_prefix(PROMPT, "reasoner") == chat.prompt_text("What is 47+85?")


def test_prompt_that_exactly_fills_the_context_is_refused(tokenizer):
    from r1interp.graphs.targets import check_prompts_fit

    n = len(tokenizer(prompt_prefix(PROMPT, "reasoner"), add_special_tokens=False).input_ids)
    check_prompts_fit(tokenizer, [PROMPT], "reasoner", n + 1)  # one position left to generate
    with pytest.raises(
        ArtifactError, match=f"prompt 'carry-01': {n} tokens do not fit the reasoner model's context of {n} positions"
    ) as info:
        check_prompts_fit(tokenizer, [PROMPT], "reasoner", n)
    assert "shorten the prompt in" in str(info.value.hint) and "<profile>.json" in str(info.value.hint)


@pytest.mark.parametrize("ids_len, target, window, starts, bos, expected", [
    (20, 10, 10, [3], 99, (list(range(10)), 0)),  # fits exactly: the whole prefix
    (20, 10, 0, [3], 99, (list(range(10)), 0)),  # no window
    (20, 11, 10, [1, 2, 3, 5], 99, ([99, *range(2, 11)], 2)),  # room 9 after BOS: the first start >= 2
    (20, 11, 10, [1, 2, 3, 5], None, (list(range(1, 11)), 1)),  # no BOS: room 10
    (20, 11, 10, [0, 11, 12], 99, None),  # no start inside [2, 11)
    (20, 11, 10, [10], 99, ([99, 10], 10)),
])  # fmt: skip
def test_windowed_exact(ids_len, target, window, starts, bos, expected):
    from r1interp.graphs.targets import windowed

    assert windowed(list(range(ids_len)), target, window, starts, bos) == expected


def _check_target(tokenizer, trace, t, kind, ends_with):
    ids = trace.prompt_ids + trace.completion_ids
    n = len(t.input_ids)
    assert list(t.input_ids) == ids[:n] and t.target_token == ids[n] and t.window_start == 0
    assert tokenizer.decode(ids[:n]).endswith(ends_with)
    assert (t.prompt_id, t.category, t.model, t.kind, t.correct, t.completion) == (
        trace.prompt.id,
        trace.prompt.category,
        trace.model,
        kind,
        trace.correct,
        trace.completion,
    )


def test_targets_exact_on_a_carry_trace(tokenizer):
    completion = (
        "<think>\nones: 7+5=12, write 2, carry 1.\ntens: 4+8+1=13, write 3, carry 1.\n</think>\n\n"
        "The answer is 5. The answer is 132." + chat.EOS
    )
    trace = _trace(tokenizer, PROMPT, completion)
    assert trace.correct is True  # the last answer
    targets = find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ")
    assert [t.kind for t in targets] == ["think", "answer"] and trace.skipped == {}
    _check_target(tokenizer, trace, targets[0], "think", "ones: 7+5=")  # the first "=" inside <think>
    _check_target(tokenizer, trace, targets[1], "answer", "The answer is 5. The answer is ")  # the last anchor
    assert tokenizer.decode([targets[1].target_token]) == "1"


def test_think_anchor_only_counts_inside_the_think_block(tokenizer):
    completion = "<think>\nsome thought\n</think>\n\n1+1=2. The answer is 2." + chat.EOS
    trace = _trace(tokenizer, PROMPT, completion)
    targets = find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ")
    assert [t.kind for t in targets] == ["answer"] and trace.skipped == {"think": "no '=' inside <think>"}
    # an answer anchor inside the think block does not count once the block is closed
    trace = _trace(tokenizer, PROMPT, "<think>\nThe answer is 1?\n</think>\n\nsure." + chat.EOS)
    assert find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ") == []
    assert trace.skipped == {"think": "no '=' inside <think>", "answer": "no 'The answer is ' in the answer"}


def test_an_unclosed_think_block_is_searched_to_the_end(tokenizer):
    completion = "<think>\nones: 7+5=12. The answer is 12"
    trace = _trace(tokenizer, PROMPT, completion)
    targets = find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ")
    assert [t.kind for t in targets] == ["think", "answer"]
    _check_target(tokenizer, trace, targets[0], "think", "ones: 7+5=")
    _check_target(tokenizer, trace, targets[1], "answer", "The answer is ")


def test_an_anchor_at_the_end_of_the_trace_has_no_target(tokenizer):
    trace = _trace(tokenizer, PROMPT, "<think>\nones: 7+5=")
    assert find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ") == []
    assert trace.skipped == {
        "think": "think anchor is at the end of the trace",
        "answer": "no 'The answer is ' in the answer",
    }


def test_a_skipped_think_window_still_gives_the_answer(tokenizer):
    run_on = "<think>\n" + " ".join(["1+1+1+1"] * 12) + " Wait, no.\n</think>\n\nThe answer is \\boxed{2}." + chat.EOS
    trace = _trace(tokenizer, PROMPT, run_on)
    targets = find_targets(tokenizer, trace, think_anchor="Wait", answer_anchor="\\boxed{", window_tokens=16)
    assert [t.kind for t in targets] == ["answer"] and list(trace.skipped) == ["think"]
    assert targets[0].window_start > 0 and targets[0].input_ids[0] == tokenizer.bos_token_id


def test_targets_use_the_first_think_block_and_ignore_anchors_in_the_question(tokenizer):
    """The question's own "=" or answer anchor never counts; of two think blocks, the first opens the search and
    the first close ends it."""
    asks = BenchmarkPrompt(id="eq", category="arithmetic", prompt="Is The answer is 5 right, 2+3=?", expected="5")
    completion = "<think>\nones: 2+3=5\n</think>\nThe answer is 5.\n<think>\nx=1\n</think>\nok." + chat.EOS
    trace = _trace(tokenizer, asks, completion)
    targets = find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ")
    assert [t.kind for t in targets] == ["think", "answer"] and trace.skipped == {}
    _check_target(tokenizer, trace, targets[0], "think", "ones: 2+3=")
    _check_target(tokenizer, trace, targets[1], "answer", "</think>\nThe answer is ")
    assert tokenizer.decode([targets[0].target_token]) == "5" == tokenizer.decode([targets[1].target_token])
    # a base model's answer without the anchor: the anchor in the question does not count
    trace = _trace(tokenizer, asks, "5" + chat.EOS, model="base")
    assert find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ") == []
    assert trace.skipped == {"think": "no <think> block", "answer": "no 'The answer is ' in the answer"}
    # an unclosed block with no answer anchor: the question's still does not count
    trace = _trace(tokenizer, asks, "<think>\nones: 2+3=5")
    assert [t.kind for t in find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ")] == [
        "think"
    ]
    assert trace.skipped == {"answer": "no 'The answer is ' in the answer"}


def test_think_target_at_the_end_still_leaves_the_answer(tokenizer):
    """In an unclosed block the answer anchor is searched through the whole turn: a think anchor at the very end
    skips only the think target."""
    trace = _trace(tokenizer, PROMPT, "<think>\nThe answer is 12. ones: 7+5=")
    targets = find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ")
    assert [t.kind for t in targets] == ["answer"]
    assert trace.skipped == {"think": "think anchor is at the end of the trace"}
    _check_target(tokenizer, trace, targets[0], "answer", "<think>\nThe answer is ")


def test_show_prints_the_end_of_the_input_and_the_target(tokenizer):
    from r1interp.graphs.targets import show

    completion = "<think>\nones: 7+5=12, write 2.\n</think>\n\nThe answer is 12." + chat.EOS
    trace = _trace(tokenizer, PROMPT, completion)
    think = find_targets(tokenizer, trace, think_anchor="=", answer_anchor="The answer is ")[0]
    text = tokenizer.decode(list(think.input_ids), skip_special_tokens=False)
    assert show(tokenizer, think) == "..." + re.sub(r"\s+", " ", text[-40:]) + " -> '1'"
    assert "\n" in text[-40:]  # newlines are shown as spaces: one line per target in the logs
    assert show(tokenizer, think, tail=6) == "...: 7+5= -> '1'"
    assert show(tokenizer, think, tail=10).startswith("...") and "\n" not in show(tokenizer, think, tail=10)
