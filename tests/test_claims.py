"""claims: parsing `expect`, validating claims and the claims.yaml mapping, every problem named by file,
claim and field. Judging claims is in test_judge.py."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from droplab.metric_table import CLAIMABLE, LAYERWISE, METRICS
from droplab.results.claims import (
    Claim,
    Claims,
    ClaimsError,
    Expectation,
    load_claims,
    parse_claims,
    parse_expect,
)

from conftest import REPO


def claim(expect: str, **extra: object) -> Claim:
    return Claim(id="c", study="S", says="says", **{"metric": "test.acc1", **extra}, expect=expect)


def header() -> dict:
    """The smallest valid regimes, sensitivity and checks: what every claims.yaml must declare besides its claims."""
    return {"regimes": {"trained": {"floors": {"S1": "s1_linear", "S4": 0.1}},
                        "overfitting": {"lowest_val_loss_by": 0.75, "val_loss_rise": 0.05, "train_val_gap": 0.05}},
            "sensitivity": {"loss_tolerance": 0.03},
            "checks": {"theory_gap": 0.05}}


EXAMPLE = [
    {"id": "s1", "study": "S1", "says": "x", "metric": "val.acc5", "expect": "after > before"},
    {"id": "s4", "study": "S4", "says": "y", "metric": "test.acc1", "expect": "p2 ~ p5", "tolerance": 0.02},
]


def write(tmp_path: Path, claims: object, **top: object) -> Path:
    """claims.yaml with a valid header, `claims` as its claims, and any top-level key replaced by `top`."""
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({**header(), "claims": claims, **top}))
    return path


def problems(path: Path) -> str:
    with pytest.raises(ClaimsError) as info:
        load_claims(path)
    return str(info.value)


# --- parse_expect and Claim ------------------------------------------------------------------------


def test_expectation_and_variants() -> None:
    assert claim("resnet18_avg > s3-max > s3_head").expectation() == Expectation(
        ">", ("resnet18_avg", "s3-max", "s3_head"))
    assert claim("a<b").variants() == ["a", "b"]
    assert claim("a ~ b").tolerance == 0.01
    assert not claim("a > b").paired and claim("a > b").overfits is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a ~ 0", Expectation("~", ("a",), 0.0)), ("a > 1.5", Expectation(">", ("a",), 1.5)),
     ("a<-0.1", Expectation("<", ("a",), -0.1)), ("a > -2", Expectation(">", ("a",), -2.0)),
     ("a > 1e-3", Expectation(">", ("a",), 0.001)), ("a ~ .5", Expectation("~", ("a",), 0.5))],
)
def test_parse_expect_numeric_second_term(text: str, expected: Expectation) -> None:
    assert parse_expect(text) == expected
    assert claim(text).variants() == ["a"]


def test_parse_expect_variant_forms_have_no_constant() -> None:
    assert parse_expect("a > b > c") == Expectation(">", ("a", "b", "c"), None)
    assert parse_expect(" c < b ") == Expectation("<", ("c", "b"), None)


def test_every_recorded_metric_is_claimable_and_only_the_variance_ratio_is_per_layer() -> None:
    """The metric table is what claims may name; theory_gap is a check of the analysis
    (checks.theory_gap), not a claimable metric."""
    assert list(LAYERWISE) == ["bn.dropout_variance_ratio"]
    assert set(CLAIMABLE) == {*METRICS, *LAYERWISE} and "bn.theory_gap" not in CLAIMABLE
    for split in ("train", "val", "test"):
        for name in ("loss", "acc1", "acc5", "f1_macro"):
            assert f"{split}.{name}" in CLAIMABLE
    for name in CLAIMABLE:
        one = claim("a > b", metric=name)
        assert one.layerwise() == (name in LAYERWISE) and one.mechanism() == name.startswith("bn.")
    assert not claim("a > b").layerwise() and not claim("a > b").mechanism()


# --- claims.yaml: loading --------------------------------------------------------------------------


def test_load_claims(tmp_path: Path) -> None:
    loaded = load_claims(write(tmp_path, EXAMPLE))
    assert isinstance(loaded, Claims)
    assert [c.id for c in loaded.claims] == ["s1", "s4"]
    assert loaded.claims[1].tolerance == 0.02 and loaded.claims[1].variants() == ["p2", "p5"]
    assert loaded.regimes.trained.floors == {"S1": "s1_linear", "S4": 0.1}
    assert (loaded.regimes.overfitting.lowest_val_loss_by, loaded.regimes.overfitting.val_loss_rise,
            loaded.regimes.overfitting.train_val_gap) == (0.75, 0.05, 0.05)
    assert (loaded.sensitivity.loss_tolerance, loaded.checks.theory_gap) == (0.03, 0.05)


def test_an_empty_claims_list_loads(tmp_path: Path) -> None:
    assert load_claims(write(tmp_path, [])).claims == []


def test_the_written_format_loads(tmp_path: Path) -> None:
    """As a person writes it: YAML 1.2 floats (1e-3 is a number), an integer floor, comments."""
    path = tmp_path / "claims.yaml"
    path.write_text("""\
regimes:
  trained:
    floors: {S3: s1_linear, S5: 1}   # a number may be an integer
  overfitting: {lowest_val_loss_by: 0.75, val_loss_rise: 5e-2, train_val_gap: 0.05}
sensitivity: {loss_tolerance: 3e-2}
checks: {theory_gap: 0.05}
claims:
  - id: s3-head-order-resnet18
    study: S3
    says: "avg > max > dropout_classifier on accuracy"
    metric: test.acc1
    expect: resnet18_avg > s3_resnet18_max > s3_resnet18_dropout_head
    paired: true
    overfits: resnet18_avg
""")
    loaded = load_claims(path)
    assert loaded.claims[0].variants() == ["resnet18_avg", "s3_resnet18_max", "s3_resnet18_dropout_head"]
    assert loaded.claims[0].paired and loaded.claims[0].overfits == "resnet18_avg"
    assert loaded.regimes.overfitting.val_loss_rise == 0.05 and loaded.sensitivity.loss_tolerance == 0.03
    assert loaded.regimes.trained.floors["S5"] == 1


def test_the_repository_claims_file_loads() -> None:
    """The committed claims.yaml is valid, and every claim's study has a trained floor."""
    loaded = load_claims(REPO / "claims.yaml")
    assert loaded.claims
    assert {c.study for c in loaded.claims} <= set(loaded.regimes.trained.floors)
    assert len({c.id for c in loaded.claims}) == len(loaded.claims)


# --- claims.yaml: problems in the claims list -----------------------------------------------------


def broken(field: str, value: object) -> list[dict]:
    return [EXAMPLE[0], {**EXAMPLE[1], field: value}]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (broken("metric", "val.top1"), "claim 's4': metric: expected '<split>.<name>' with split in "
                                       "train|val|test and name in acc1|acc5|f1_macro|loss"),
        (broken("expect", "a >> b"), "claim 's4': expect: expected 'A > B [> C ...]', 'A < B [...]' "
                                     "or 'A ~ B'"),
        (broken("expect", "a > b < c"), "claim 's4': expect: mixes '<' and '>'"),
        (broken("expect", "a ~ b ~ c"), "claim 's4': expect: '~' compares exactly two variants"),
        (broken("expect", "a > a"), "claim 's4': expect: variant 'a' appears more than once"),
        (broken("expect", "a > b c"), "claim 's4': expect: expected 'A > B"),
        (broken("tolerance", 0), "claim 's4': tolerance: Input should be greater than 0"),
        (broken("id", "s1"), "claim 's1': id is used twice (list items 1 and 2); ids must be unique"),
        (broken("colour", "red"), "claim 's4': colour: unknown key; allowed: id, study, says, metric, expect, "
                                  "tolerance, paired, overfits"),
        (broken("id", 7), "list item 2: id: Input should be a valid string"),
        (broken("overfits", 3), "claim 's4': overfits: Input should be a valid string"),
        ([EXAMPLE[0], "s2"], "list item 2: expected a mapping with keys id, study"),
        ([{k: v for k, v in EXAMPLE[0].items() if k != "says"}], "claim 's1': says: required key is missing"),
        ([{**EXAMPLE[0], "tolerance": 0.05}], "claim 's1': tolerance is only used by 'A ~ B' claims"),
    ],
)
def test_claim_errors_name_file_claim_and_field(tmp_path: Path, claims: object, message: str) -> None:
    path = write(tmp_path, claims)
    assert problems(path).startswith(f"{path}: {message}")


def test_a_duplicate_id_is_reported_once_per_repeat(tmp_path: Path) -> None:
    path = write(tmp_path, [EXAMPLE[0], {**EXAMPLE[1], "id": "s1"}, {**EXAMPLE[1], "id": "s1"}])
    assert problems(path).splitlines() == [
        f"{path}: claim 's1': id is used twice (list items 1 and 2); ids must be unique",
        f"{path}: claim 's1': id is used twice (list items 1 and 3); ids must be unique"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, [{**EXAMPLE[0], "metric": "x"}, "s2", {**EXAMPLE[1], "expect": "?", "colour": "red"}])
    lines = problems(path).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert [line.removeprefix(f"{path}: ").split(": ")[0:2] for line in lines] == [
        ["claim 's1'", "metric"], ["list item 2", "expected a mapping with keys id, study, says, metric, expect, "
                                                  "tolerance, paired, overfits, got str"],
        ["claim 's4'", "expect"], ["claim 's4'", "colour"]]


NUMBER_FORMS = "a number compares with exactly one variant, after it: 'A > 1.5', 'A < 0.1' or 'A ~ 0'"


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"expect": "0 < a"}, f"expect: {NUMBER_FORMS}; got '0' as term 1 of 2"),
     ({"expect": "a > 1 > b"}, f"expect: {NUMBER_FORMS}; got '1' as term 2 of 3"),
     ({"expect": "a > b > 1"}, f"expect: {NUMBER_FORMS}; got '1' as term 3 of 3"),
     ({"expect": "a ~ 1 ~ b"}, "expect: '~' compares exactly two variants"),
     ({"expect": "a > 1.2.3"}, "expect: expected 'A > B [> C ...]', 'A < B [...]' or 'A ~ B'"),
     ({"expect": "a ~ 1e999"}, "expect: number '1e999': expected a finite number"),
     ({"expect": "a > 1", "paired": True},
      "paired compares variants seed by seed; expect 'a > 1' has one variant and a number"),
     ({"expect": "a > 1", "tolerance": 0.1}, "tolerance is only used by 'A ~ B' claims, not by expect 'a > 1'"),
     ({"paired": "yes"}, "paired: Input should be a valid boolean"),
     ({"metric": "bn.theory_gap"}, "metric: expected '<split>.<name>' with split in train|val|test and name in "
                                   "acc1|acc5|f1_macro|loss, or one of bn.dropout_variance_ratio_blocks|"
                                   "bn.stored_variance_shift_blocks|bn.recal_gain|recal.acc1|bn.recal_gain_vs_twin|"
                                   "bn.dropout_variance_ratio (got 'bn.theory_gap')")],
)
def test_claim_field_errors(tmp_path: Path, changes: dict, message: str) -> None:
    path = write(tmp_path, [{**EXAMPLE[0], **changes}])
    assert problems(path).startswith(f"{path}: claim 's1': {message}")


def test_paired_bn_and_overfits_fields_load(tmp_path: Path) -> None:
    ratio_claim = {**EXAMPLE[1], "metric": "bn.dropout_variance_ratio", "expect": "p2 ~ 1", "tolerance": 0.05}
    path = write(tmp_path, [{**EXAMPLE[0], "paired": True, "overfits": "before"}, ratio_claim,
                            {**EXAMPLE[0], "id": "s4b", "metric": "bn.recal_gain", "expect": "p2 > p5"}])
    paired, ratio, gain = load_claims(path).claims
    assert paired.paired and paired.overfits == "before" and not ratio.paired
    assert ratio.expectation() == Expectation("~", ("p2",), 1.0) and ratio.layerwise() and ratio.mechanism()
    assert not gain.layerwise() and gain.mechanism() and gain.tolerance == 0.01


# --- claims.yaml: problems in the header -----------------------------------------------------------


def changed(path: tuple[str, ...], value: object) -> dict:
    """The header with one nested key set (or removed, for value None)."""
    top = header()
    where = top
    for key in path[:-1]:
        where = where[key]
    if value is None:
        del where[path[-1]]
    else:
        where[path[-1]] = value
    return top


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [(("checks",), None, "checks: required key is missing"),
     (("regimes", "overfitting"), None, "regimes.overfitting: required key is missing"),
     (("regimes", "trained", "floors"), {}, "regimes.trained.floors: Dictionary should have at least 1 item"),
     (("regimes", "overfitting", "lowest_val_loss_by"), 1.5,
      "regimes.overfitting.lowest_val_loss_by: Input should be less than or equal to 1 (got 1.5)"),
     (("regimes", "overfitting", "val_loss_rise"), 0, "regimes.overfitting.val_loss_rise: Input should be greater "
                                                      "than 0 (got 0)"),
     (("regimes", "overfitting", "train_val_gap"), "0.05", "regimes.overfitting.train_val_gap: Input should be a "
                                                           "valid number"),
     (("sensitivity", "loss_tolerance"), -0.1, "sensitivity.loss_tolerance: Input should be greater than 0"),
     (("checks", "theory_gap"), 0.0, "checks.theory_gap: Input should be greater than 0"),
     (("checks", "colour"), "red", "checks.colour: unknown key; allowed: theory_gap"),
     (("regimes", "untrained"), {}, "regimes.untrained: unknown key; allowed: trained, overfitting"),
     (("notes",), "x", "notes: unknown key; allowed: regimes, sensitivity, checks, claims")],
)
def test_header_errors_name_file_and_key(tmp_path: Path, key: tuple[str, ...], value: object, message: str) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({**changed(key, value), "claims": EXAMPLE}))
    assert problems(path).startswith(f"{path}: {message}")


def test_every_header_problem_is_reported_at_once(tmp_path: Path) -> None:
    top = changed(("sensitivity", "loss_tolerance"), 0)
    top["checks"]["theory_gap"] = -1
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({**top, "claims": EXAMPLE}))
    assert [line.split(": ")[1] for line in problems(path).splitlines()] == ["sensitivity.loss_tolerance",
                                                                             "checks.theory_gap"]


def test_the_old_list_format_is_refused_by_name(tmp_path: Path) -> None:
    """A claims file from before the regimes (a bare list) says what the file must be now."""
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(EXAMPLE))
    assert problems(path) == f"{path}: expected a mapping with keys regimes, sensitivity, checks, claims, got list"


@pytest.mark.parametrize("claims", [{"s1": EXAMPLE[0]}, None, "s1"])
def test_claims_must_be_a_list(tmp_path: Path, claims: object) -> None:
    path = write(tmp_path, claims)
    assert problems(path).startswith(f"{path}: claims: Input should be a valid list")


@pytest.mark.parametrize(
    ("text", "message"),
    [("regimes: [unclosed", "not valid YAML"),
     ("", "expected a mapping with keys regimes, sensitivity, checks, claims, got an empty file"),
     ("a: 1\na: 2\n", "not valid YAML: key 'a' appears twice")],
)
def test_load_claims_not_yaml_or_empty(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text(text)
    assert problems(path).startswith(f"{path}: {message}")


def test_load_claims_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "claims.yaml").startswith(f"{tmp_path / 'claims.yaml'}: file not found")


def test_parse_claims_names_its_source_and_leaves_the_input_alone() -> None:
    raw = {**header(), "claims": copy.deepcopy(EXAMPLE)}
    before = copy.deepcopy(raw)
    assert [c.id for c in parse_claims(raw, "given").claims] == ["s1", "s4"]
    assert raw == before
    with pytest.raises(ClaimsError, match=r"^given: claim 's1': metric"):
        parse_claims({**raw, "claims": [{**EXAMPLE[0], "metric": "nope"}]}, "given")
