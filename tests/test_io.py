"""Atomic writes: either the new artifact or the previous one, never a half-written one."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from r1interp.io import atomic_path, write_json, write_parquet


class Boom(Exception):
    pass


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_file_success_creates_and_replaces(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp != target
        assert not target.exists()  # nothing visible until the block succeeds
        tmp.write_text("one")
    assert target.read_text() == "one"
    with atomic_path(target) as tmp:
        tmp.write_text("two")
        assert target.read_text() == "one"
    assert target.read_text() == "two"
    assert _names(target.parent) == ["out.txt"]


def test_file_failure_keeps_previous(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("previous")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise Boom
    assert target.read_text() == "previous"
    assert _names(tmp_path) == ["out.txt"]


def test_file_failure_without_previous_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
            raise KeyboardInterrupt  # interrupts (BaseException) clean up too
    assert _names(tmp_path) == []


def test_dir_success_replaces_whole_tree(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target, directory=True) as tmp:
        assert tmp.is_dir()
        (tmp / "a.txt").write_text("a1")
        (tmp / "nested").mkdir()
        (tmp / "nested" / "b.txt").write_text("b1")
    assert (target / "nested" / "b.txt").read_text() == "b1"
    with atomic_path(target, directory=True) as tmp:
        (tmp / "c.txt").write_text("c2")
        assert (target / "a.txt").read_text() == "a1"
    # The old tree is gone entirely, not merged.
    assert _names(target) == ["c.txt"]
    assert _names(tmp_path) == ["model"]


def test_dir_failure_keeps_previous(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(Boom):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "weights").write_text("new")
            (tmp / "deep").mkdir()
            (tmp / "deep" / "x").write_text("x")
            raise Boom
    assert _names(target) == ["weights"]
    assert (target / "weights").read_text() == "old"
    assert _names(tmp_path) == ["model"]


def test_dir_failure_without_previous_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        with atomic_path(tmp_path / "d", directory=True) as tmp:
            (tmp / "f").write_text("x")
            raise Boom
    assert _names(tmp_path) == []


def test_write_json(tmp_path):
    target = tmp_path / "metrics" / "m.json"
    obj = {"b": [1, 2.5, None], "a": {"z": True, "y": "é"}}
    write_json(target, obj)
    text = target.read_text()
    assert json.loads(text) == obj
    assert text.endswith("\n")
    assert text.index('"a"') < text.index('"b"')  # keys sorted: stable diffs for DVC metrics
    assert text == json.dumps(obj, indent=2, sort_keys=True) + "\n"
    write_json(target, [1])
    assert json.loads(target.read_text()) == [1]


def test_write_json_failure_keeps_previous(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert _names(tmp_path) == ["m.json"]


def test_write_parquet(tmp_path):
    df = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    target = tmp_path / "t.parquet"
    write_parquet(target, df)
    pd.testing.assert_frame_equal(pd.read_parquet(target), df)
    assert _names(tmp_path) == ["t.parquet"]


def test_debris_of_killed_writers_is_removed_by_the_next_write(tmp_path):
    import os
    import subprocess
    import sys

    target = tmp_path / "model"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # exited: nothing runs under this pid any more (recycling aside)
    (tmp_path / f".model.tmp-{dead_pid}-abcd").mkdir()  # a SIGKILLed writer's half-written folder
    (tmp_path / f".model.tmp-{dead_pid}-abcd" / "weights").write_text("half")
    (tmp_path / ".model.tmp-x1y2z3").mkdir()  # the old naming without a pid
    (tmp_path / f".model.old-{dead_pid}").mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f".model.tmp-{live.pid}-efgh").mkdir()  # a writer that is still running
        (tmp_path / f".other.tmp-{dead_pid}-ijkl").mkdir()  # another target's temp: not ours to judge
        with atomic_path(target, directory=True) as tmp:
            assert tmp.name.startswith(f".model.tmp-{os.getpid()}-")
            (tmp / "weights").write_text("new")
        assert (target / "weights").read_text() == "new"
        assert _names(tmp_path) == [f".model.tmp-{live.pid}-efgh", f".other.tmp-{dead_pid}-ijkl", "model"]
    finally:
        live.kill()
        live.wait()
