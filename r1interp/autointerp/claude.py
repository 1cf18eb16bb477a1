"""The Claude labeler and scorer: the same interfaces as the offline ones, over `ClaudeClient`.

All requests of a stage go through one `complete_many` call per phase (explain, then score),
so they share the concurrency, the rate limits and the on-disk cache: a re-run sends only
what has no cached answer.
"""

from __future__ import annotations

from r1interp.autointerp import prompts
from r1interp.autointerp.client import ClaudeClient, LLMRequest
from r1interp.autointerp.evidence import FeatureEvidence
from r1interp.autointerp.offline import Label
from r1interp.autointerp.scoring import Sample

LABELER_ID = "claude"


class ClaudeLabeler:
    def __init__(self, client: ClaudeClient, model: str, max_tokens: int, threshold_fraction: float):
        self.client, self.model, self.max_tokens = client, model, max_tokens
        self.threshold_fraction = threshold_fraction

    def label_all(self, evidence: list[FeatureEvidence]) -> list[Label]:
        requests = [
            LLMRequest(
                self.model,
                prompts.explanation_prompt(ev, self.threshold_fraction),
                prompts.EXPLAIN_SYSTEM,
                self.max_tokens,
            )
            for ev in evidence
        ]
        answers = self.client.complete_many(requests, desc="explain")
        labels = []
        for req in requests:
            text = prompts.parse_explanation(answers[req.key].text)
            labels.append(Label(text, LABELER_ID, self.model, req.key, None, "ok" if text else "unparsed"))
        return labels


class ClaudeScorer:
    """Detection and fuzzing answered by Claude, `per_prompt` examples per request."""

    def __init__(self, client: ClaudeClient, model: str, per_prompt: int):
        self.client, self.model, self.per_prompt = client, model, per_prompt

    def _request(self, method: str, label: str, samples: list[Sample]) -> LLMRequest:
        if method == "detection":
            excerpts, system = [prompts.detection_excerpt(s.example) for s in samples], prompts.DETECTION_SYSTEM
        else:
            excerpts, system = (
                [prompts.fuzzing_excerpt(s.example, s.highlight) for s in samples],
                prompts.FUZZING_SYSTEM,
            )
        # the answer is a short list: a few tokens per example is plenty
        return LLMRequest(self.model, prompts.scoring_prompt(label, excerpts), system, max_tokens=16 + 4 * len(samples))

    def predict_all(self, tasks) -> list[list[bool | None]]:
        plan = []  # (task index, start, request)
        for t, (_, label, method, samples) in enumerate(tasks):
            for start in range(0, len(samples), self.per_prompt):
                plan.append((t, start, self._request(method, label.text, samples[start : start + self.per_prompt])))
        answers = self.client.complete_many([req for _, _, req in plan], desc="score")
        out: list[list[bool | None]] = [[None] * len(task[3]) for task in tasks]
        for t, start, req in plan:
            n = min(self.per_prompt, len(tasks[t][3]) - start)
            parsed = prompts.parse_binary_list(answers[req.key].text, n)
            if parsed is not None:  # unparseable answers leave their examples unanswered (and counted)
                out[t][start : start + n] = parsed
        return out
