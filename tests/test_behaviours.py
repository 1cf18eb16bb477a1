"""Sentence segmentation of real traces, the R1 behaviour annotator, and math-verify grading."""

from __future__ import annotations

import pytest

from r1interp import chat
from r1interp.grading import answer_part, grade
from r1interp.reasoning.behaviours import CATEGORIES, annotate, annotate_trace, behaviour_counts, sentence_spans

BODY = """Okay, so I need to find x when 2x = 5. Let me recall that dividing by 2 gives x = 2.5.
Wait, that's not right? No, it is right.
Let me check: 2 * 2.5 = 5. Hmm, I'm not sure about the sign.
Alternatively, subtract 5 from both sides. So x = 2.5."""


def test_sentences_keep_decimals_and_split_lines():
    sentences = [BODY[a:b] for a, b in sentence_spans(BODY)]
    assert sentences == [
        "Okay, so I need to find x when 2x = 5.", "Let me recall that dividing by 2 gives x = 2.5.",
        "Wait, that's not right?", "No, it is right.", "Let me check: 2 * 2.5 = 5.", "Hmm, I'm not sure about the sign.",
        "Alternatively, subtract 5 from both sides.", "So x = 2.5.",
    ]  # fmt: skip
    assert all(BODY[a:b] == BODY[a:b].strip() and a < b for a, b in sentence_spans(BODY))
    assert sentence_spans("\n\n  \n") == []


def test_annotator_finds_each_behaviour():
    sentences = [BODY[a:b] for a, b in sentence_spans(BODY)]
    assert annotate_trace(sentences) == [
        "initializing", "adding_knowledge", "backtracking", "backtracking", "example_testing",
        "uncertainty_estimation", "backtracking", "deduction",
    ]  # fmt: skip
    assert annotate("So x = 2.5.", first=True) == "initializing"  # a trace's opening sentence
    assert annotate("The sum is 12, right?") == "uncertainty_estimation"  # stated mid-sentence
    assert annotate("- Wait, 7 is odd.") == "backtracking"  # leading list markers ignored
    assert annotate("Let me recall the formula.") == "adding_knowledge"  # not a "let me re..." backtrack
    counts = behaviour_counts(BODY)
    assert set(counts) == set(CATEGORIES) and sum(counts.values()) == 8 and counts["backtracking"] == 3


@pytest.mark.parametrize("completion, gold, correct, finished", [
    ("<think>x</think>\n\nSo the answer is \\boxed{\\frac{1}{2}}." + chat.EOS, "0.5", True, True),
    ("<think>x</think>\n\nThe answer is \\boxed{2}.", "\\frac{4}{2}", True, True),
    ("<think>x</think>\n\nThe answer is \\boxed{3}.", "2", False, True),
    ("<think>the answer is \\boxed{2} but I keep thinking", "2", True, False),  # never closed: graded as a whole
    ("<think>\\boxed{2}</think> no answer given", "2", False, True),  # the think span does not count once closed
])  # fmt: skip
def test_grading_uses_math_verify_on_the_answer(completion, gold, correct, finished):
    result = grade(completion, gold)
    assert (result.correct, result.finished) == (correct, finished)
    assert answer_part(completion)[1] is finished


# ------------------------------------------------------------------ Claude as the annotator, through a local server


def _claude_like(request: dict) -> str:
    from claude_responder import respond

    assert "[BEHAVIOURS]" in (request.get("system") or "")
    return respond(request)


def test_claude_annotates_traces_cached_with_the_rules_as_fallback(tmp_path, monkeypatch):
    import dataclasses

    from messages_server import MessagesServer
    from r1interp.autointerp.client import ClaudeClient
    from r1interp.config import ClaudeParams
    from r1interp.reasoning.claude_behaviours import annotate_traces, parse

    traces = [[BODY[a:b] for a, b in sentence_spans(BODY)], ["Okay, so GARBLE.", "Hmm, maybe 3."], ["Wait, 2+2=4."]]
    cfg = dataclasses.replace(ClaudeParams(), max_retry_wait_s=0.2, timeout_s=5.0)
    with MessagesServer(_claude_like, api_key="sk-ant-test") as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        client = ClaudeClient(cfg, tmp_path / "cache", api_key="sk-ant-test")
        labels, info = annotate_traces(client, traces, "claude-sonnet-4-6", 300)
        assert info == {"requests": 3, "fallback_traces": 1}
        assert labels[0] == [
            "initializing",
            "adding_knowledge",
            "backtracking",
            "backtracking",
            "example_testing",
            "deduction",
            "backtracking",
            "deduction",
        ]  # Claude's, not the rules' (Hmm -> deduction)
        assert labels[1] == annotate_trace(traces[1])  # garbled answer: the rules, counted as a fallback
        assert labels[2] == ["backtracking"]
        sent = len(server.message_requests())
        labels2, _ = annotate_traces(ClaudeClient(cfg, tmp_path / "cache", api_key="sk-ant-test"), traces,
                                     "claude-sonnet-4-6", 300)  # fmt: skip
        assert labels2 == labels and len(server.message_requests()) == sent  # nothing paid twice
    assert "sk-ant-test" not in (tmp_path / "cache" / "responses.jsonl").read_text()
    assert parse("1: deduction\n2: guessing", 2) is None and parse("2: deduction\n1: backtracking", 2) == [
        "backtracking",
        "deduction",
    ]


def test_claude_annotator_without_a_key_is_refused_before_any_work(tmp_path):
    import subprocess
    import sys

    from helpers import REPO, _env
    from r1interp.config import merge_override, write_params

    params = merge_override(REPO / "configs" / "r1-distill-qwen-1.5b.yaml")
    params["clusters"]["annotator"] = "claude"
    write_params(params, tmp_path / "params.yaml")
    env = {k: v for k, v in _env().items() if not k.startswith("ANTHROPIC_")}
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "clusters.py"), "--params", "params.yaml"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "error: clusters.annotator is 'claude' but ANTHROPIC_API_KEY is not set" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing read, nothing written
