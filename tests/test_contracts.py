"""The data contracts: each rejection reason, and that nothing is dropped silently."""

import pandas as pd
import pytest

from pushgen.core.errors import DataContractError
from pushgen.data.contracts import read_table, validate, write_rejected, write_table


def _pushes(**overrides):
    row = dict(
        push_id="p1",
        video_id="v1",
        text="You won't believe this",
        sent_at=pd.Timestamp(0),
        pv=1000,
        clicks=20,
        ctr=0.02,
        svr=0.3,
        lvtr=0.6,
        htr=0.001,
    )
    row.update(overrides)
    return row


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"push_id": None}, "missing push_id"),
        ({"video_id": ""}, "missing video_id"),
        ({"pv": -5}, "negative pv"),
        ({"clicks": 2.5}, "non-integer clicks"),
        ({"pv": "lots"}, "non-numeric pv"),
        ({"pv": float("nan")}, "non-numeric pv"),
        ({"clicks": 2000}, "clicks > pv"),
        ({"ctr": 1.5}, "ctr not in [0, 1]"),
        ({"text": "   "}, "empty text"),
        ({"text": None}, "empty text"),
        ({"text": "x" * 501}, "text over 500 chars"),
        ({"video_id": "v-unknown"}, "unknown video_id"),
    ],
)
def test_each_rejection_reason(override, reason):
    df = pd.DataFrame([_pushes(push_id="ok"), _pushes(**override)])
    valid, rejected = validate("pushes", df, known_video_ids=["v1"])
    assert list(rejected["reject_reason"]) == [reason]
    assert len(valid) + len(rejected) == len(df)
    assert valid["pv"].dtype == "int64"


def test_duplicate_ids_keep_first_reject_rest():
    df = pd.DataFrame([_pushes(), _pushes(text="another"), _pushes(push_id="p2")])
    valid, rejected = validate("pushes", df)
    assert list(valid.push_id) == ["p1", "p2"]
    assert list(rejected.reject_reason) == ["duplicate push_id"]


def test_ab_arm_may_repeat_across_tests_not_within():
    rows = [
        dict(test_id=t, video_id="v1", push_id=p, text="hi there", pv=100, clicks=3)
        for t, p in [("t1", "a"), ("t1", "b"), ("t2", "a"), ("t2", "a")]
    ]
    valid, rejected = validate("ab_tests", pd.DataFrame(rows))
    assert len(valid) == 3
    assert list(rejected.reject_reason) == ["duplicate test_id+push_id"]


def test_missing_columns_and_empty_tables_are_errors():
    with pytest.raises(DataContractError, match="missing column"):
        validate("pushes", pd.DataFrame([{"push_id": "p"}]))
    with pytest.raises(DataContractError, match="no rows"):
        validate("pushes", pd.DataFrame(columns=list(_pushes())))
    with pytest.raises(DataContractError, match="unknown table contract"):
        validate("nope", pd.DataFrame())


def test_io_errors_are_clear_and_rejected_rows_kept(tmp_path):
    with pytest.raises(DataContractError, match="no such file"):
        read_table(tmp_path / "absent.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataContractError, match="cannot read"):
        read_table(tmp_path / "bad.parquet")
    df = pd.DataFrame([_pushes(), _pushes(push_id="p2", pv=-1)])
    write_table(df, tmp_path / "t.parquet")
    valid, rejected = validate("pushes", read_table(tmp_path / "t.parquet", "pushes"))
    path = write_rejected(rejected, tmp_path, step="clean")
    kept = pd.read_parquet(path)
    assert list(kept.push_id) == ["p2"] and list(kept.step) == ["clean"]
    assert write_rejected(rejected.iloc[0:0], tmp_path / "none", "clean") is None
