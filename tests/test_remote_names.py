"""Remote file names are checked before any download writes under a local folder (r1interp/registry/remote_names.py)."""

from __future__ import annotations

import pytest

from r1interp.registry.hub import HubError
from r1interp.registry.remote_names import check_remote_names, unsafe_reason


@pytest.mark.parametrize("name", ["config.json", "layers.3.mlp/sae.safetensors", "a/b/c.json", "..hidden.json",
                                  "x..y/z.json", ".gitattributes"])  # fmt: skip
def test_plain_relative_names_pass(name, tmp_path):
    assert unsafe_reason(name) is None
    check_remote_names([name], tmp_path, "acme/m@abc")


@pytest.mark.parametrize(("name", "reason"), [
    ("../escape/pwned.json", "'..' part"), ("a/../../b.json", "'..' part"), ("..", "'..' part"),
    ("/etc/passwd.json", "absolute path"), ("C:/x.json", "drive letter"), ("c:x.json", "drive letter"),
    ("a\\..\\b.json", "backslash"), ("a//b.json", "empty or '.' part"), ("./a.json", "empty or '.' part"),
    ("a/.", "empty or '.' part"), ("", "empty name"), ("a\x00.json", "control character"), ("a\n.json", "control character"),
])  # fmt: skip
def test_names_that_could_leave_the_folder_are_refused_with_the_reason(name, reason, tmp_path):
    assert reason in unsafe_reason(name)
    with pytest.raises(HubError, match=f"acme/m@abc: the remote lists .* which has .*{reason}"):
        check_remote_names(["config.json", name], tmp_path, "acme/m@abc")


def test_a_symlinked_subfolder_pointing_outside_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(HubError, match="resolves outside the folder"):
        check_remote_names(["link/x.json"], root, "acme/m@abc")
