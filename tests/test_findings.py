"""Quoted numbers are recomputed from the records they cite."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsblock.analysis import findings
from wsblock.errors import UsageError

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = Path(__file__).parent.parent / "results" / "reference" / "FINDINGS.md"


def _doc(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(body.replace("RUN", str(FIXTURES / "run_a")))
    return path


def test_a_correct_quote_passes_and_a_wrong_one_is_reported(tmp_path) -> None:
    q = "RUN disconnect_share workload=pure_python strategy=inline agg=max"
    value = findings.evaluate(findings.Query.parse(q.replace("RUN", str(FIXTURES / "run_a"))), tmp_path)
    good = findings.format_value(value, 2)
    doc = _doc(tmp_path, f"lost **{good}**<!-- q: {q} --> and **0.01**<!-- q: {q} -->\n")
    checked, bad = findings.check(doc)
    assert checked == 2
    assert [m.quoted for m in bad] == ["0.01"] and bad[0].line == 1


def test_none_is_quoted_as_none(tmp_path) -> None:
    q = "RUN first_disconnect_s workload=blocking_io strategy=thread work_ms=200 ping_timeout=0.5"
    assert findings.check(_doc(tmp_path, f"first: none<!-- q: {q} -->"))[1] == []


@pytest.mark.parametrize(
    "query,message",
    [
        ("RUN nope", "no column"),
        ("RUN lag_p99_ms workload=cobol", "no matching record"),
        ("RUN lag_p99_ms agg=mode", "agg must be"),
        ("missing lag_p99_ms", "no such directory"),
    ],
)
def test_bad_queries_are_errors(tmp_path, query: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        findings.check(_doc(tmp_path, f"x 1<!-- q: {query} -->"))


def test_the_committed_findings_match_the_committed_records() -> None:
    checked, mismatches = findings.check(REFERENCE)
    assert checked >= 20
    assert mismatches == []


def test_fill_replaces_placeholders_with_values_that_then_check(tmp_path) -> None:
    q = "RUN lag_p99_ms workload=pure_python strategy=thread agg=max"
    doc = _doc(tmp_path, f"lag **?1**<!-- q: {q} --> ms, kept: 7<!-- q: {q} -->\n")
    assert findings.fill(doc) == 1
    text = doc.read_text()
    assert "?1" not in text and "kept: 7<!--" in text
    checked, bad = findings.check(doc)
    assert checked == 2 and [m.quoted for m in bad] == ["7"]  # the hand-written 7 is wrong
