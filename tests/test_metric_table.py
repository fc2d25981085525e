"""droplab.metric_table: the one table of metrics, its report columns, and the docs' copy of it."""

from __future__ import annotations

from droplab.metric_table import CLAIMABLE, COMPARED, LAYERWISE, METRICS, metric, report_columns, rounded_floats

from conftest import REPO


def test_docs_show_the_table_itself() -> None:
    from droplab.metric_table import markdown
    docs = (REPO / "docs/pipeline.md").read_text()
    assert "\n".join("  " + line for line in markdown().splitlines()) in docs


def test_report_columns_are_the_committed_reports() -> None:
    """The report's column order, as report/summary.md has it (a changed order would move bytes)."""
    assert report_columns(mechanism=False) == ["test_acc1", "test_acc1_ci95", "test_acc5", "test_f1_macro",
                                               "test_loss"]
    assert report_columns(mechanism=True) == ["dropout_D", "dropout_D_ci95", "stored_shift", "recal_gain",
                                              "recal_gain_ci95", "recal_vs_twin", "recal_vs_twin_ci95"]


def test_one_row_per_measure_names_all_its_spellings() -> None:
    """The stored shift's block mean in stats.json, its per-layer field in metrics/bn and its
    report column are one row, as is D's."""
    shift = METRICS["bn.stored_variance_shift_blocks"]
    assert (shift.layer_field, shift.blocks_field, shift.column) == ("stored_variance_shift",
                                                                     "stored_variance_shift_blocks", "stored_shift")
    assert metric("bn.dropout_variance_ratio") is METRICS["bn.dropout_variance_ratio_blocks"]
    assert set(CLAIMABLE) == {*METRICS, *LAYERWISE} and COMPARED in METRICS


def test_rounded_floats_rounds_floats_only() -> None:
    assert rounded_floats({"a": 0.1234567891, "n": 3, "s": "x", "none": None}) == {"a": 0.123457, "n": 3, "s": "x",
                                                                                   "none": None}
