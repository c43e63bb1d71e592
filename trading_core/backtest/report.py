"""Walk-forward report: equity and drawdown plots (PNG), fold and summary tables (CSV), one
self-contained HTML page (images embedded as base64), and their logging to the active MLflow run.

Plots use matplotlib's object API (``Figure``) without pyplot: no global state, no GUI backend,
safe in Airflow workers.
"""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from trading_core.backtest.engine import BacktestResult

ARTIFACT_DIR = "walk_forward"


def _plot(curves: dict[str, BacktestResult], path: Path, drawdown: bool) -> None:
    fig = Figure(figsize=(10, 4.5), dpi=100)
    ax = fig.add_subplot()
    for name, res in curves.items():
        eq = np.asarray(res.equity, dtype=np.float64)
        y = eq / np.maximum.accumulate(eq) - 1.0 if drawdown else eq / eq[0]
        x = pd.to_datetime(np.asarray(res.timestamps)) if len(res.timestamps) == len(eq) else np.arange(len(eq))
        ax.plot(x, y, label=name, linewidth=1.2)
    ax.set_title("Drawdown (out of sample)" if drawdown else "Equity, initial = 1 (out of sample)")
    ax.set_ylabel("drawdown" if drawdown else "equity")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png")


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def write_report(
    table: pd.DataFrame,
    summary: pd.DataFrame,
    curves: dict[str, BacktestResult],
    out_dir: Path,
    title: str,
    lineage: dict[str, str],
) -> dict[str, Path]:
    """Write ``equity.png``, ``drawdown.png``, ``folds.csv`` (``table``), ``summary.csv`` and
    ``report.html`` into ``out_dir``; returns name -> path. ``curves``: strategy -> its out-of-sample
    curve (e.g. :func:`~trading_core.backtest.engine.concatenate` of its folds for one seed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "equity": out_dir / "equity.png",
        "drawdown": out_dir / "drawdown.png",
        "folds": out_dir / "folds.csv",
        "summary": out_dir / "summary.csv",
        "report": out_dir / "report.html",
    }
    _plot(curves, paths["equity"], drawdown=False)
    _plot(curves, paths["drawdown"], drawdown=True)
    table.to_csv(paths["folds"], index=False)
    summary.to_csv(paths["summary"], index=False)
    lineage_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in sorted(lineage.items())
    )
    fmt = "{:.4f}".format
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin-bottom: 2em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Lineage</h2><table class="lineage">{lineage_rows}</table>
<h2>Summary (mean and 95% confidence interval)</h2>
{summary.to_html(index=False, float_format=fmt, classes="summary", na_rep="")}
<h2>Equity</h2>{_img(paths["equity"], "equity curves")}
<h2>Drawdown</h2>{_img(paths["drawdown"], "drawdown curves")}
<h2>Folds</h2>
{table.to_html(index=False, float_format=fmt, classes="folds", na_rep="")}
</body></html>
"""
    paths["report"].write_text(page, encoding="utf-8")
    return paths


def _metric_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def log_report_to_mlflow(paths: dict[str, Path], summary: pd.DataFrame, lineage: dict[str, str]) -> None:
    """Log the report into the **active** MLflow run: the files under ``walk_forward/``, a metric
    ``<strategy>_<metric>_mean`` (and ``_ci_low`` / ``_ci_high``) per summary cell that is finite,
    and the lineage as tags.

    :raises RuntimeError: when no MLflow run is active (the caller owns the validation run).
    """
    import mlflow

    if mlflow.active_run() is None:
        raise RuntimeError("log_report_to_mlflow needs an active MLflow run (the validation run)")
    for path in paths.values():
        mlflow.log_artifact(str(path), artifact_path=ARTIFACT_DIR)
    metrics: dict[str, float] = {}
    value_columns = [c for c in summary.columns if c.endswith(("_mean", "_ci_low", "_ci_high"))]
    for _, row in summary.iterrows():
        for col in value_columns:
            value = row[col]
            if isinstance(value, int | float | np.floating | np.integer) and math.isfinite(float(value)):
                metrics[_metric_key(f"{row['strategy']}_{col}")] = float(value)
    if metrics:
        mlflow.log_metrics(metrics)
    if lineage:
        mlflow.set_tags({str(k): str(v) for k, v in lineage.items()})
