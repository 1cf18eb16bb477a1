"""A user's environment (offline Hub, another endpoint, real keys, debug tracebacks) does not change the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

HOSTILE_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_users_own",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "sk-users-own", "R1INTERP_DEBUG": "1",
}  # fmt: skip
# tests that talk to the local Hub and Messages-API servers and check one-line errors. The Hub tests fail when
# the hostile settings reach them (checked by disabling conftest.py's scrub). The Claude client tests set their
# own ANTHROPIC_* settings, so the whole module passes either way: two of them stand for it here (its rate-limit
# and batch tests spend ~15 s waiting and read no setting these do not).
SELECTION = ["tests/test_fetch_e2e.py::test_unknown_revision_repo_and_branch_names_fail_clearly",
             "tests/test_fetch_e2e.py::test_an_interrupted_download_resumes",
             "tests/test_claude_client.py::test_success_writes_cache_and_sends_the_right_request",
             "tests/test_claude_client.py::test_missing_api_key_is_a_clear_error"]  # fmt: skip


def test_the_users_hub_and_claude_settings_do_not_reach_the_tests():
    env = {**os.environ, **HOSTILE_ENV}
    # -n 0: the three selected modules in this one process, not on workers of their own
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *SELECTION], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
