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


SMALL_WINDOWS = ["--seq-len", "10", "--turbulence-window", "40", "--vol-regime-window", "40", "--corr-window", "20"]


def test_features_build_list_and_show(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    ingest = ["ingest", "--source", "synthetic", "--n-assets", "4", "--start", "2022-01-03", "--end", "2023-12-29"]
    assert main(ingest) == 0
    dataset_version = json.loads(capsys.readouterr().out)["dataset_version"]

    build = ["features", "build", *SMALL_WINDOWS, "--shard-size", "3", "--groups", "market,technical,regime"]
    assert main([*build, "--horizon", "3", "--entry", "close"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset_version"] == dataset_version and not result["reused"]
    assert result["feature_set_version"].startswith("fs-") and min(result["samples"].values()) > 0
    assert main([*build, "--horizon", "3", "--entry", "close", "--dataset-version", dataset_version]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["reused"] and again["feature_set_version"] == result["feature_set_version"]

    assert main(["features", "list"]) == 0
    listed = capsys.readouterr().out
    assert result["feature_set_version"] in listed and dataset_version in listed

    assert main(["features", "show", result["feature_set_version"]]) == 0
    shown = capsys.readouterr().out
    assert "horizon 3" in shown and "entry close" in shown and "seq_len 10" in shown
    assert "market (" in shown and "technical (" in shown and "regime (" in shown and "microstructure" not in shown
    for split in ("train", "val", "test"):
        assert f" {split} " in shown
    assert "majority (baseline)" in shown


def test_features_errors_exit_2_with_a_message(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "build"]) == 2
    assert "no dataset_version to build features from" in capsys.readouterr().err
    assert main(["features", "build", "--groups", "market,astrology"]) == 2
    assert "feature groups" in capsys.readouterr().err
    assert main(["features", "show", "fs-0000"]) == 2
    assert "is not recorded" in capsys.readouterr().err
