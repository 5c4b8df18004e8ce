"""The model's scores are computed once per state of the reference records (``wsblock.advise.skill_cache``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wsblock.advise import predict, skill_cache


@pytest.fixture
def fresh(tmp_path, monkeypatch) -> Path:
    """A cache directory of its own, nothing kept in this process, and a small reference tree."""
    monkeypatch.setenv("WSBLOCK_CACHE_DIR", str(tmp_path / "cache"))
    skill_cache.forget()
    root = tmp_path / "reference"
    (root / "run" / "cells").mkdir(parents=True)
    (root / "run" / "cells" / "a.json").write_text('{"id": "a"}')
    yield root
    skill_cache.forget()


class Counter:
    def __init__(self, rows=None) -> None:
        self.calls = 0
        self.rows = [{"n": 1}] if rows is None else rows

    def __call__(self):
        self.calls += 1
        return self.rows


def test_the_same_records_are_scored_once_in_process_and_across_processes(fresh) -> None:
    compute = Counter()
    assert skill_cache.cached(fresh, compute, phases=100) == [{"n": 1}]
    assert skill_cache.cached(fresh, compute, phases=100) == [{"n": 1}]
    assert compute.calls == 1
    skill_cache.forget()  # as a new process would: only the stored file is left
    assert skill_cache.cached(fresh, compute, phases=100) == [{"n": 1}]
    assert compute.calls == 1
    stored = json.loads((Path(os.environ["WSBLOCK_CACHE_DIR"]) / skill_cache.CACHE_FILE).read_text())
    assert stored["rows"] == [{"n": 1}]


@pytest.mark.parametrize("change", ["rewritten", "touched", "added", "removed"])
def test_a_changed_reference_file_scores_again(fresh, change) -> None:
    compute = Counter()
    skill_cache.cached(fresh, compute, phases=100)
    record = fresh / "run" / "cells" / "a.json"
    if change == "rewritten":
        record.write_text('{"id": "b"}')  # same size, new content and time
        stat = record.stat()
        os.utime(record, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    elif change == "touched":
        stat = record.stat()
        os.utime(record, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    elif change == "added":
        (fresh / "run" / "cells" / "b.json").write_text("{}")
    else:
        record.unlink()
    skill_cache.forget()
    skill_cache.cached(fresh, compute, phases=100)
    assert compute.calls == 2


def test_other_arguments_or_another_root_score_again(fresh, tmp_path) -> None:
    compute = Counter()
    skill_cache.cached(fresh, compute, phases=100)
    skill_cache.cached(fresh, compute, phases=50)
    other = tmp_path / "elsewhere"
    other.mkdir()
    skill_cache.cached(other, compute, phases=100)
    assert compute.calls == 3


def test_an_empty_result_is_not_kept_and_a_damaged_store_is_replaced(fresh) -> None:
    empty = Counter(rows=[])
    assert skill_cache.cached(fresh, empty, phases=100) == []
    assert skill_cache.cached(fresh, empty, phases=100) == []
    assert empty.calls == 2
    store = Path(os.environ["WSBLOCK_CACHE_DIR"]) / skill_cache.CACHE_FILE
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text("{not json")
    compute = Counter()
    assert skill_cache.cached(fresh, compute, phases=100) == [{"n": 1}]
    assert compute.calls == 1 and json.loads(store.read_text())["rows"] == [{"n": 1}]


def test_skill_round_trips_through_the_store(fresh, monkeypatch) -> None:
    scored = (predict.Skill("every repeat", True, 0.1, "base rate", 0.2, 10, 3),)
    calls = []
    monkeypatch.setattr(predict, "_score", lambda root, phases: calls.append(root) or scored)
    assert predict.skill(fresh) == scored
    skill_cache.forget()
    assert predict.skill(fresh) == scored
    assert calls == [fresh]
