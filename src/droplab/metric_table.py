"""The one table of what a run records (like timm's `_NORM_MAP`): every metric's name, where a
run's files hold it, whether claims judge it layer by layer, and its report column. The claims
validator, the aggregate, the headline summary, the report's columns and docs/pipeline.md all
read it, so adding a metric is one row here. Torch-free: the base layer."""

from __future__ import annotations

from dataclasses import dataclass

from droplab.records import rounded

SPLITS = ("train", "val", "test")
SPLIT_METRICS = ("acc1", "acc5", "f1_macro", "loss")  # in each run's metrics/train JSON, per split
COMPARED = "test.acc1"  # the metric the studies compare variants on, and the headline summary shows


def rounded_floats(record: dict) -> dict:
    """The record with its float values rounded to records.DECIMALS, as every file droplab writes
    (ints, strings, None and containers as they are)."""
    return {key: rounded(value) if isinstance(value, float) else value for key, value in record.items()}


@dataclass(frozen=True)
class Metric:
    """One measure a run records, under the one name claims.yaml, report/stats.json and the report use."""

    key: str  # "<split>.<metric>", "bn.<measure>" or "recal.acc1"
    doc: str
    column: str | None = None  # its column in the report's tables (None: not shown there)
    interval: bool = False  # the report shows its 95% half-width beside it ("<column>_ci95")
    layer_field: str | None = None  # the per-BN-layer value in metrics/bn JSON that this is the block mean of
    layerwise: bool = False  # also collected per BN layer, and a claim on "bn.<layer_field>" is judged per layer

    @property
    def mechanism(self) -> bool:
        """A measure of the BN analysis rather than an accuracy: its claims form their own Holm family."""
        return self.key.startswith("bn.")

    @property
    def ci_column(self) -> str | None:
        """The report column of its 95% half-width, beside the mean."""
        return f"{self.column}_ci95" if self.column and self.interval else None

    @property
    def blocks_field(self) -> str | None:
        """Its block mean's key in metrics/bn JSON."""
        return None if self.layer_field is None else f"{self.layer_field}_blocks"


_SPLIT_DOCS = {"acc1": "top-1 accuracy", "acc5": "top-5 accuracy", "f1_macro": "macro-averaged F1",
               "loss": "cross-entropy loss"}
_SPLIT_ROWS = [Metric(f"{split}.{name}", f"{_SPLIT_DOCS[name]} on {split} at the best-validation epoch",
                      column=f"test_{name}" if split == "test" else None, interval=f"{split}.{name}" == COMPARED)
               for split in SPLITS for name in SPLIT_METRICS]
# In the order report/stats.json lists them for each variant.
_BN_ROWS = [
    Metric("bn.dropout_variance_ratio_blocks", "dropout's own variance shift D at the blocks' BNs, "
           "Var(dropout on) / Var(dropout off), mean over those layers", column="dropout_D", interval=True,
           layer_field="dropout_variance_ratio", layerwise=True),
    Metric("bn.stored_variance_shift_blocks", "BN's stored running_var against its eval-mode input variance, "
           "max(a/b, b/a), mean over the blocks' BNs", column="stored_shift", layer_field="stored_variance_shift"),
    Metric("bn.recal_gain", "test top-1 after recomputing BN statistics with dropout off, minus before",
           column="recal_gain", interval=True),
    Metric("recal.acc1", "test top-1 after BN recalibration (test top-1 itself where there is no BN)"),
    Metric("bn.recal_gain_vs_twin", "bn.recal_gain minus the same seed's gain of the variant's no-dropout twin",
           column="recal_vs_twin", interval=True),
]
METRICS: dict[str, Metric] = {metric.key: metric for metric in _SPLIT_ROWS + _BN_ROWS}
# "bn.dropout_variance_ratio" -> its block-mean row: claims on these are judged BN layer by BN layer
LAYERWISE: dict[str, Metric] = {f"bn.{metric.layer_field}": metric for metric in _BN_ROWS if metric.layerwise}
CLAIMABLE = (*METRICS, *LAYERWISE)


def metric(key: str) -> Metric:
    """The table row of a claimable name (a layerwise name: the row of its block mean)."""
    return LAYERWISE.get(key) or METRICS[key]


def report_columns(mechanism: bool) -> list[str]:
    """The report's columns of the accuracy (False) or BN (True) measures, each interval beside its mean."""
    return [name for row in METRICS.values() if row.column and row.mechanism == mechanism
            for name in (row.column, *([row.ci_column] if row.ci_column else []))]


def markdown() -> str:
    """The table as docs/pipeline.md shows it (a test keeps the two the same)."""
    lines = ["| metric | what | report column |", "|---|---|---|"]
    for key in CLAIMABLE:
        row = metric(key)
        what = f"{row.doc}; judged per BN layer" if key in LAYERWISE else row.doc
        column = "" if key in LAYERWISE or row.column is None else f"`{row.column}`"
        lines.append(f"| `{key}` | {what} | {column} |")
    return "\n".join(lines)
