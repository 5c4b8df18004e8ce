"""Quoted numbers are recomputed from the records they cite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, ROOT
from wsblock.report import findings
from wsblock.errors import UsageError

REFERENCE = ROOT / "results" / "reference" / "FINDINGS.md"


def _doc(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(body.replace("RUN", str(FIXTURES / "run_a")))
    return path


def test_a_correct_quote_passes_and_a_wrong_one_is_reported(tmp_path) -> None:
    q = "RUN disconnect_share workload=pure_python strategy=inline ping_timeout=0.5 agg=max"
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


@pytest.mark.slow
def test_the_committed_findings_match_the_committed_records() -> None:
    checked, mismatches = findings.check(REFERENCE)
    assert checked >= 20
    # Every number matches, and no survival figure rests on a cell whose
    # window could not show a keepalive timeout.
    assert mismatches == []


def test_fill_replaces_placeholders_with_values_that_then_check(tmp_path) -> None:
    q = "RUN lag_p99_ms workload=pure_python strategy=thread agg=max"
    doc = _doc(tmp_path, f"lag **?1**<!-- q: {q} --> ms, kept: 7<!-- q: {q} -->\n")
    assert findings.fill(doc) == 1
    text = doc.read_text()
    assert "?1" not in text and "kept: 7<!--" in text
    checked, bad = findings.check(doc)
    assert checked == 2 and [m.quoted for m in bad] == ["7"]  # the hand-written 7 is wrong


# --- Aggregations over repeats, and the honesty check ------------------------

TEMPLATE = FIXTURES / "run_a" / "cells" / "pure_python-2500ms-thread-pi0.5-pt0.5-r0.json"


def _repeats(root: Path, repeats: list[dict], *, cell: str = "pure_python-2500ms-thread-pi0.5-pt0.5") -> Path:
    """A run directory with one record per repeat of one measured cell.

    Each repeat is a fixture record with its lag p99, original connections
    lost of original connections and verdict replaced, so the expected
    values can be computed by hand.
    """
    cells = root / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    for i, spec in enumerate(repeats):
        rec = json.loads(TEMPLATE.read_text())
        lost, originals = spec["lost"], spec["of"]
        rec["matrix"] = {"cell_id": f"{cell}-r{i}", "repeat": i}
        rec["loop_lag_ms"]["p99"] = spec["lag"]
        rec["disconnects"]["original"] = {"connections": originals, "lost": lost}
        rec["disconnects"]["total"] = lost
        rec["disconnects"]["share"] = lost / originals
        rec["survival"]["verdict"] = spec["verdict"]
        rec["warnings"] = [{"code": c, "message": c} for c in spec.get("warnings", [])]
        (cells / f"{cell}-r{i}.json").write_text(json.dumps(rec))
    return root


THREE = [  # 3 of 12 original connections lost, in 2 of 3 repeats
    {"lag": 30.0, "lost": 0, "of": 4, "verdict": "kept"},
    {"lag": 10.0, "lost": 1, "of": 4, "verdict": "lost"},
    {"lag": 20.0, "lost": 2, "of": 4, "verdict": "lost"},
]


def _value(base: Path, text: str) -> float | None:
    return findings.evaluate(findings.Query.parse(text), base)


def test_each_aggregation_matches_a_hand_computed_value(tmp_path) -> None:
    _repeats(tmp_path / "run", THREE)
    q = "run lag_p99_ms workload=pure_python strategy=thread"
    assert _value(tmp_path, f"{q} agg=n") == 3
    assert _value(tmp_path, q) == 20.0
    # Three repeats: no pair of order statistics reaches 95 %, so the
    # interval is the range, at 1 - 2 * 0.5**3 = 75 % confidence.
    assert (_value(tmp_path, f"{q} agg=ci_low"), _value(tmp_path, f"{q} agg=ci_high")) == (10.0, 30.0)
    assert _value(tmp_path, f"{q} agg=ci_conf") == pytest.approx(0.75)
    s = "run disconnect_share"
    assert (_value(tmp_path, f"{s} agg=lost_k"), _value(tmp_path, f"{s} agg=lost_n")) == (3, 12)
    assert _value(tmp_path, f"{s} agg=lost_share") == pytest.approx(0.25)
    # Wilson score interval of 3 of 12 at 95 % (z = 1.96): 0.0889 .. 0.5323.
    assert _value(tmp_path, f"{s} agg=lost_low") == pytest.approx(0.0889, abs=1e-4)
    assert _value(tmp_path, f"{s} agg=lost_high") == pytest.approx(0.5323, abs=1e-4)
    assert _value(tmp_path, f"{s} agg=lost_any") == 2
    # Verdicts are counted with a filter on the label column.
    assert _value(tmp_path, "run verdict verdict=lost agg=n") == 2
    assert _value(tmp_path, "run verdict verdict=kept agg=count") == 1
    assert _value(tmp_path, "run verdict agg=count") == 3
    # A count of verdicts or warnings may be zero; a filter that matches
    # nothing else is still an error (a typo, not a finding).
    assert _value(tmp_path, "run verdict verdict=not_applicable agg=n") == 0
    assert _value(tmp_path, "run cell_id warnings=handler_errors agg=n") == 0
    with pytest.raises(UsageError, match="no matching record"):
        _value(tmp_path, "run verdict strategy=threads verdict=lost agg=n")
    with pytest.raises(UsageError, match="no matching record"):
        _value(tmp_path, "run verdict verdict=not_applicable agg=median")


def test_the_aggregations_are_the_ones_the_report_computes(tmp_path) -> None:
    from wsblock.analysis import aggregate, tidy

    _repeats(tmp_path / "run", [*THREE, {"lag": 50.0, "lost": 3, "of": 5, "verdict": "lost"},
                                {"lag": 40.0, "lost": 0, "of": 6, "verdict": "kept"},
                                {"lag": 45.0, "lost": 0, "of": 6, "verdict": "kept"}])
    row = aggregate.aggregate(tidy.frame(tidy.load_records(tmp_path / "run").records)).iloc[0]
    q = "run lag_p99_ms"
    for agg, column in (("ci_low", "lag_p99_ms_low"), ("ci_high", "lag_p99_ms_high"),
                        ("ci_conf", "lag_p99_ms_conf")):
        assert _value(tmp_path, f"{q} agg={agg}") == pytest.approx(row[column])
    for agg in ("lost_k", "lost_n", "lost_share", "lost_low", "lost_high"):
        assert _value(tmp_path, f"run disconnect_share agg={agg}") == pytest.approx(row[agg])
    assert _value(tmp_path, "run disconnect_share agg=lost_any") == row["repeats_lost_any"]
    assert _value(tmp_path, f"{q} agg=ci_conf") > 0.95 > 0.75  # six repeats reach 95 %
    # Survival with the repeat as the unit: repeats that lost any, of repeats, with the Wilson interval over repeats.
    lost_any, repeats = int(row["repeats_lost_any"]), int(row["loss_repeats"])
    assert _value(tmp_path, "run disconnect_share agg=repeats_lost") == lost_any
    assert _value(tmp_path, "run disconnect_share agg=repeats_n") == repeats
    from wsblock.analysis import intervals as iv

    over = iv.wilson(lost_any, repeats)
    assert _value(tmp_path, "run disconnect_share agg=repeats_low") == pytest.approx(over.low)
    assert _value(tmp_path, "run disconnect_share agg=repeats_high") == pytest.approx(over.high)
    # Fewer trials than connections: the interval over repeats is the wider one.
    assert over.high - over.low > row["lost_high"] - row["lost_low"]


def _check(tmp_path: Path, body: str) -> list[findings.Mismatch]:
    doc = tmp_path / "doc.md"
    doc.write_text(body)
    return findings.check(doc)[1]


def test_a_survival_figure_over_inconclusive_rows_is_refused_unless_allowed(tmp_path) -> None:
    _repeats(tmp_path / "run", [*THREE[:2], {"lag": 20.0, "lost": 0, "of": 4, "verdict": "inconclusive"}])
    assert _value(tmp_path, "run disconnect_share agg=lost_k") == 1
    bad = _check(tmp_path, "lost 1<!-- q: run disconnect_share agg=lost_k --> of "
                           "12<!-- q: run disconnect_share agg=lost_n -->, lag 20<!-- q: run lag_p99_ms -->\n")
    assert [(m.quoted, m.rows, m.agrees) for m in bad] == [("1", 3, True), ("12", 3, True)]  # the lag is not a survival figure
    assert "1 of 3 matched rows that are inconclusive (1)" in bad[0].refused
    assert "allow=inconclusive" in bad[0].describe()
    # The author may choose the verdicts, or say that inconclusive rows count.
    assert _check(tmp_path, "1<!-- q: run disconnect_share verdict=lost agg=lost_k -->"
                            " 1<!-- q: run disconnect_share agg=lost_k allow=inconclusive -->"
                            " 1<!-- q: run verdict verdict=inconclusive agg=n -->") == []
    # Counting verdicts without choosing them is refused too, as is a plain share.
    assert len(_check(tmp_path, "3<!-- q: run verdict agg=count --> 0.25<!-- q: run disconnect_share -->")) == 2
    # A wrong number that is also refused says both.
    (wrong,) = _check(tmp_path, "7<!-- q: run disconnect_share agg=lost_k -->")
    assert not wrong.agrees and "inconclusive (1)" in wrong.refused
    assert wrong.describe().startswith("quoted 7, records give 1.0; not supported: survival figure")


def test_no_refusal_where_every_row_could_show_survival(tmp_path) -> None:
    _repeats(tmp_path / "run", THREE)
    assert _check(tmp_path, "3<!-- q: run disconnect_share agg=lost_k --> "
                            "0.09<!-- q: run disconnect_share agg=lost_low -->") == []


def test_a_survival_figure_over_legacy_records_is_refused(tmp_path) -> None:
    # Version 1 records: upgraded with the legacy_record warning.
    run = FIXTURES / "pandas_chunks"
    q = f"{run} disconnect_share strategy=inline"
    assert _value(tmp_path, q) == 0.0
    (bad,) = _check(tmp_path, f"0.00<!-- q: {q} -->")
    assert "legacy records (2)" in bad.refused and bad.rows == 2
    assert _check(tmp_path, f"0.00<!-- q: {q} allow=inconclusive -->") == []
    assert _check(tmp_path, f"826<!-- q: {q.replace('disconnect_share', 'lag_p99_ms')} agg=min -->") == []
    # warnings=CODE selects the rows that carry a code.
    assert _value(tmp_path, f"{run} lag_p99_ms warnings=legacy_record agg=n") == 4
    run_a = FIXTURES / "run_a"
    assert _value(tmp_path, f"{run_a} verdict warnings=inconclusive_window agg=n") == 7
    assert _value(tmp_path, f"{run_a} verdict warnings=inconclusive_window verdict=inconclusive agg=n") == 7
    assert _value(tmp_path, f"{run_a} lag_p99_ms status=ok warnings=none agg=n") == 2


@pytest.mark.parametrize(
    "query,message",
    [
        ("RUN lag_p99_ms agg=lost_k", "use the column disconnect_share"),
        ("RUN disconnect_share agg=ci_low", "is a proportion"),
        ("RUN disconnect_share allow=everything", "allow must be"),
    ],
)
def test_aggregations_that_do_not_fit_their_column_are_errors(tmp_path, query: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        findings.check(_doc(tmp_path, f"x 1<!-- q: {query} -->"))


def test_fill_and_query_give_the_new_aggregations(tmp_path) -> None:
    _repeats(tmp_path / "run", THREE)
    doc = tmp_path / "doc.md"
    doc.write_text("?0<!-- q: run disconnect_share agg=lost_k --> of ?0<!-- q: run disconnect_share agg=lost_n -->"
                   " (?2<!-- q: run disconnect_share agg=lost_low --> to "
                   "?2<!-- q: run disconnect_share agg=lost_high -->)\n")
    assert findings.fill(doc) == 4
    assert doc.read_text().startswith("3<!--") and "(0.09<!--" in doc.read_text()
    assert "to 0.53<!--" in doc.read_text() and findings.check(doc) == (4, [])
    lines, note = findings.lines("run disconnect_share", tmp_path)
    assert lines == [f"{v}<!-- q: run disconnect_share{a} -->" for v, a in (
        ("0.25", ""), ("3", " agg=n"), ("3", " agg=lost_k"), ("12", " agg=lost_n"), ("0.25", " agg=lost_share"),
        ("0.09", " agg=lost_low"), ("0.53", " agg=lost_high"), ("2", " agg=lost_any"), ("2", " agg=repeats_lost"),
        ("3", " agg=repeats_n"), ("0.21", " agg=repeats_low"), ("0.94", " agg=repeats_high"))]
    assert note is None
    lines, _ = findings.lines("run lag_p99_ms", tmp_path, 1)
    assert lines == [f"{v}<!-- q: run lag_p99_ms{a} -->" for v, a in (
        ("20.0", ""), ("3", " agg=n"), ("3", " agg=count"), ("10.0", " agg=ci_low"), ("30.0", " agg=ci_high"), ("0.8", " agg=ci_conf"))]
    assert findings.lines("run verdict verdict=lost", tmp_path)[0] == ["2<!-- q: run verdict verdict=lost agg=n -->"]
    _repeats(tmp_path / "other", [*THREE[:2], {"lag": 20.0, "lost": 0, "of": 4, "verdict": "inconclusive"}])
    assert "inconclusive (1)" in findings.lines("other disconnect_share agg=lost_k", tmp_path)[1]


@pytest.mark.e2e
def test_the_command_line_lists_refused_quotes_and_exits_non_zero(tmp_path) -> None:
    from tests.helpers import run_cli

    _repeats(tmp_path / "run", [*THREE[:2], {"lag": 20.0, "lost": 0, "of": 4, "verdict": "inconclusive"}])
    doc = tmp_path / "doc.md"
    doc.write_text("1<!-- q: run disconnect_share agg=lost_k -->\n20<!-- q: run lag_p99_ms -->\n")
    proc = run_cli("findings", "check", str(doc))
    assert proc.returncode == 1
    assert "doc.md:1: quoted 1, not supported: survival figure over 1 of 3 matched rows" in proc.stdout
    assert "2 quoted numbers checked, 0 do not match the records, 1 are refused (survival figures" in proc.stdout


def test_a_searched_boundary_is_a_query_over_the_cells_of_a_search(tmp_path) -> None:
    from wsblock.boundary import fit

    cells = tmp_path / "search" / "cells"
    cells.mkdir(parents=True)
    # Six cells of a search: kept below about 500 ms of measured job, lost above.
    spec = [(400.0, 420.0, 0), (450.0, 470.0, 0), (500.0, 520.0, 4), (500.0, 505.0, 0), (560.0, 590.0, 6),
            (630.0, 650.0, 6)]
    for i, (work, took, lost) in enumerate(spec):
        rec = json.loads(TEMPLATE.read_text())
        cid = f"pure_python-{work:g}ms-inline-pi1-pt1-r{i}"
        rec["matrix"] = {"cell_id": cid, "repeat": i}
        rec["params"]["work_ms"] = work
        rec["job_ms"]["p50"] = took
        rec["disconnects"]["original"] = {"connections": 6, "lost": lost}
        rec["survival"]["verdict"] = "lost" if lost else "kept"
        (cells / f"{cid}.json").write_text(json.dumps(rec))
    expected = fit.crossing([(took, lost / 6) for _, took, lost in spec], 0.5)
    q = "search disconnect_share"
    assert _value(tmp_path, f"{q} agg=boundary_cells") == 6
    assert _value(tmp_path, f"{q} agg=boundary_ms") == pytest.approx(expected.value)
    assert _value(tmp_path, f"{q} agg=boundary_low") == pytest.approx(expected.low)
    assert _value(tmp_path, f"{q} agg=boundary_high") == pytest.approx(expected.high)
    assert 470 <= expected.value <= 590
    tail = fit.crossing([(took, lost / 6) for _, took, lost in spec], 0.05)
    assert _value(tmp_path, f"{q} agg=boundary_p05_ms") == (None if tail.value is None else pytest.approx(tail.value))
    assert _value(tmp_path, f"{q} agg=boundary_p05_low") == (None if tail.low is None else pytest.approx(tail.low))
    in_work = fit.crossing([(work, lost / 6) for work, _, lost in spec], 0.5)
    assert _value(tmp_path, f"{q} agg=boundary_work_ms") == pytest.approx(in_work.value)
    # The model's crossing, fed each row's own record, is computed the same way.
    from wsblock.boundary import model as bm

    records = [json.loads(f.read_text()) for f in sorted(cells.glob("*.json"))]
    predicted = fit.crossing([(r["job_ms"]["p50"], bm.predict_record(r, phases=100).p) for r in records], 0.5)
    model = _value(tmp_path, f"{q} agg=boundary_model_ms")
    assert model == (None if predicted.value is None else pytest.approx(predicted.value))
    # Filters select one search among several in a directory; a boundary of another column is an error.
    assert _value(tmp_path, f"{q} work_ms=500 agg=boundary_cells") == 2
    with pytest.raises(UsageError, match="searched boundary"):
        findings.Query.parse("search lag_p99_ms agg=boundary_ms")


def test_a_connection_level_interval_pooled_over_cells_is_refused(tmp_path) -> None:
    one = "RUN disconnect_share workload=c_holds_gil strategy=inline work_ms=200 ping_timeout=0.5"
    pooled = "RUN disconnect_share strategy=inline verdict=lost"
    base = FIXTURES / "run_a"
    values = {q: findings.format_value(findings.evaluate(findings.Query.parse(
        q.replace("RUN", str(base))), tmp_path), 2) for q in (f"{one} agg=lost_high", f"{pooled} agg=lost_high",
                                                               f"{pooled} agg=repeats_lost")}
    body = "".join(f"{v}<!-- q: {q} -->\n" for q, v in values.items())
    bad = findings.check(_doc(tmp_path, body))[1]
    # One cell's interval may be quoted; the same bound pooled over cells may not, even filtered on verdict;
    # the repeats that lost, counted over the same rows, may.
    assert [m.line for m in bad] == [2] and bad[0].agrees
    assert bad[0].refused.startswith("connection-level interval pooled over")


def test_a_contrast_is_quoted_as_fishers_test_over_repeats(tmp_path) -> None:
    from wsblock.analysis import rules

    # 2 of 3 repeats lost against 0 of 3: not established, however many connections each lost.
    _repeats(tmp_path / "run", [*THREE], cell="pure_python-2500ms-thread-pi0.5-pt0.5")
    _repeats(tmp_path / "run", [{"lag": 5.0, "lost": 0, "of": 4, "verdict": "kept"}] * 3,
             cell="pure_python-2500ms-process-pi0.5-pt0.5")
    for path in (tmp_path / "run" / "cells").glob("*process*.json"):
        rec = json.loads(path.read_text())
        rec["params"]["strategy"] = "process"
        path.write_text(json.dumps(rec))
    q = "run disconnect_share strategy=thread agg=repeats_fisher_p vs.strategy=process"
    expected = rules.contrast((2, 3), (0, 3)).p_value
    assert _value(tmp_path, q) == pytest.approx(expected) and expected > rules.ALPHA
    assert findings.check(_write(tmp_path, f"p = {expected:.2f}<!-- q: {q} -->\n"))[1] == []
    for bad in ("run disconnect_share agg=repeats_fisher_p", "run disconnect_share vs.strategy=process",
                "run lag_p99_ms agg=repeats_fisher_p vs.strategy=process"):
        with pytest.raises(UsageError, match="contrast"):
            findings.Query.parse(bad)


def _write(tmp_path: Path, body: str) -> Path:
    doc = tmp_path / "doc.md"
    doc.write_text(body)
    return doc


@pytest.mark.parametrize("query, message", [
    ("r model agg=median", "a score needs"),
    ("r disconnect_share agg=score_brier", "a score needs"),
    ("r model band=maybe agg=score_brier", "band=yes or band=no"),
    ("r model workload=x agg=score_brier", "band=yes or band=no"),
])
def test_a_score_query_names_a_forecast_and_only_the_band(query: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        findings.Query.parse(query)


@pytest.mark.slow
def test_a_score_query_gives_what_boundary_score_computes() -> None:
    from wsblock.boundary import score as boundary_score

    root = ROOT / "results" / "reference"
    whole = boundary_score.score(boundary_score.trials_from([root], phases=100))
    band = boundary_score.score(boundary_score.trials_from([root], phases=100), band_only=True)

    def value(text: str) -> float | None:
        return findings.evaluate(findings.Query.parse(text), root)

    assert value(". model agg=score_brier") == pytest.approx(whole.row(boundary_score.MODEL).brier)
    assert value(". jobs_rule agg=score_log_loss") == pytest.approx(whole.row(boundary_score.JOBS_RULE).log_loss)
    assert value(". model agg=score_repeats") == whole.repeats
    assert value(". model band=yes agg=score_repeats") == band.repeats < whole.repeats
    assert value(". base_rate band=yes agg=score_brier") == pytest.approx(band.row(boundary_score.BASE_RATE).brier)
    assert value(". model agg=score_groups_won") is None  # the model is not compared with itself
