"""The `trading` CLI calls the same stage functions and reports errors clearly."""

from __future__ import annotations

import json

import pytest

from trading_core.cli import main
from trading_core.config import Settings


def test_ingest_then_list_and_show_quarantine(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "ingest",
            "--source",
            "synthetic",
            "--symbols",
            "SYN001,SYN002",
            "--start",
            "2024-01-02",
            "--end",
            "2024-02-29",
            "--n-assets",
            "4",
            "--defect-rate",
            "0.05",
            "--max-bad-share",
            "0.5",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["symbols"] == ["SYN001", "SYN002"] and result["rows_quarantined"] > 0
    assert main(["datasets"]) == 0
    assert result["dataset_version"] in capsys.readouterr().out
    assert main(["quarantine", result["run_id"]]) == 0
    out = capsys.readouterr().out
    assert f"{result['rows_quarantined']} of {result['rows_read']} rows quarantined" in out
    assert "[" in out and "row " in out


def test_bad_input_exits_2_with_a_message(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["ingest", "--source", "synthetic", "--symbols", "../x", "--start", "2024-01-02", "--end", "2024-01-09"])
        == 2
    )
    assert "invalid symbol" in capsys.readouterr().err
    assert main(["ingest", "--source", "csv"]) == 2
    assert "needs path" in capsys.readouterr().err
    assert main(["quarantine", "nope"]) == 1


def test_info_hides_secrets(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADING_POLYGON_API_KEY", "sekret")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "sekret" not in out and json.loads(out)["lake_dir"].endswith("lake")
