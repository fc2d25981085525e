"""The README is a short user's manual, and every number its results block quotes is the committed run's.

Each number between the `<!-- results -->` markers is recomputed here, independently of how the
README was written, from report/stats.json, claims.yaml and bench/repro.md, and compared as quoted
(rounded to the decimals the README shows). A number the checks below do not account for fails
the test, so a new number in the block needs a check here. The README, CONTRIBUTING.md and the
docs also link only to files (and headings) that exist, and point nowhere outside the repository.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from droplab.results.judge import ALPHA

from conftest import REPO

README = REPO / "README.md"
STATS = REPO / "report" / "stats.json"
CLAIMS = REPO / "claims.yaml"
REPRO = REPO / "bench" / "repro.md"
STUDIES_DOC = REPO / "docs" / "studies.md"
START, END = "<!-- results -->", "<!-- end results -->"
MAX_LINES = 320
NOT_TESTABLE = "not testable at this scale"
DECIDED = ("confirmed", "contradicted")
ACCURACY_DECIMALS = 4  # accuracies and their differences, as report/summary.md prints them
DEFAULT_TOLERANCE = 0.01  # claims.yaml: "tolerance: for "~" only (default 0.01)"
# The words a study's results may contain digits in without quoting a number.
NAMES = re.compile(r"`[^`]*`|\]\([^)]*\)|\bS[1-5]\b|ResNet-(?:18|50)|top-[15]\b|2-core")
NUMBER = re.compile(r"[-+±]?\d[\d,]*(?:\.\d+)?%?")


@pytest.fixture(scope="module")
def stats() -> dict:
    return json.loads(STATS.read_text())


@pytest.fixture(scope="module")
def claims_yaml() -> dict:
    return {claim["id"]: claim for claim in yaml.safe_load(CLAIMS.read_text())["claims"]}


def results_block() -> str:
    text = README.read_text()
    assert text.count(START) == 1 and text.count(END) == 1, "the README keeps one results block"
    return text.split(START)[1].split(END)[0]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def claim_rows(block: str) -> list[dict[str, str]]:
    lines = [line for line in block.splitlines() if line.startswith("|")]
    header = cells(lines[0])
    assert header == ["claim", "verdict", "this run", "published"], header
    return [dict(zip(header, cells(line), strict=True)) for line in lines[2:]]


def prose(block: str) -> str:
    """The block without its table, on one line."""
    return " ".join(line for line in block.splitlines() if not line.startswith("|")).replace("  ", " ")


def as_quoted(value: float, quoted: str) -> str:
    """`value` rounded and signed the way `quoted` is written."""
    quoted = quoted.lstrip("±")
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    return f"{value:+.{decimals}f}" if quoted[0] in "+-" else f"{value:.{decimals}f}"


def assert_quoted(quoted: str, value: float, what: str, significant: int = 2, decimals: int | None = None) -> None:
    """`quoted` is `value` rounded as quoted, to at least `significant` digits (or exactly `decimals`)."""
    if decimals is not None:
        shown = len(quoted.split(".")[1]) if "." in quoted else 0
        assert shown == decimals, f"{what}: quote {quoted} with {decimals} decimals"
    else:
        digits = quoted.lstrip("±+-").replace(".", "").lstrip("0")
        assert len(digits) >= significant, f"{what}: {quoted} is too coarse to check; quote {significant} digits"
    assert quoted.lstrip("±") == as_quoted(value, quoted), f"{what}: the README says {quoted}, the run {value}"


def consume(text: str, pattern: str, check: Callable[[re.Match], None], required: bool = False) -> str:
    """Check every match of `pattern` and blank it out, so that what is left has no number to check."""
    matches = list(re.finditer(pattern, text))
    assert matches or not required, f"expected {pattern!r} in: {text}"
    for match in matches:
        check(match)
    return re.sub(pattern, " ", text)


def assert_no_unchecked_number(text: str, where: str) -> None:
    left = NUMBER.findall(NAMES.sub(" ", text))
    assert not left, f"{where}: numbers the test does not check: {left} in {text!r}"


def expected_verdict(claim: dict) -> str:
    return NOT_TESTABLE if claim["verdict"].startswith(NOT_TESTABLE) else claim["verdict"]


def check_row(row: dict[str, str], claim: dict, stats: dict, tolerance: float) -> None:
    """One claim's row: its verdict, and every number of its `this run` cell."""
    cid = claim["id"]
    assert row["verdict"].strip("*") == expected_verdict(claim), f"{cid}: verdict"
    variants, study = stats["variants"], claim["study"]
    steps = claim["steps"]
    text = row["this run"]

    def rate(match: re.Match) -> None:
        assert_quoted(match[1], stats["sweeps"][study]["selected"], f"{cid}: selected rate", significant=1)

    def seeds(match: re.Match) -> None:
        counts = {variants[name]["test.acc1"]["n"] for name in claim["compared"]}
        assert counts == {int(match[1])}, f"{cid}: seeds {match[1]}, the run {counts}"

    intervals = iter(steps)

    def interval(match: re.Match) -> None:
        step = next(intervals, None)
        assert step is not None, f"{cid}: more intervals than the claim has steps"
        assert_quoted(match[1], step["ci_low"], f"{cid}: interval low", decimals=ACCURACY_DECIMALS)
        assert_quoted(match[2], step["ci_high"], f"{cid}: interval high", decimals=ACCURACY_DECIMALS)
        if match[3]:  # "inside ±0.01" / "outside ±0.01": the equivalence margin and where the interval lies
            assert_quoted(match[4], tolerance, f"{cid}: tolerance", significant=1)
            inside = -tolerance <= step["ci_low"] and step["ci_high"] <= tolerance
            outside = step["ci_high"] < -tolerance or step["ci_low"] > tolerance
            assert (inside, outside) == (match[3] == "inside", match[3] == "outside"), f"{cid}: {match[0]}"

    def p_value(match: re.Match) -> None:
        assert_quoted(match[1], claim["p_value"], f"{cid}: p")

    def holm(match: re.Match) -> None:
        assert_quoted(match[1], claim["p_holm"], f"{cid}: Holm p")

    def detectable(match: re.Match) -> None:
        assert_quoted(match[1], steps[0]["detectable"], f"{cid}: detectable difference")
        assert f"{match[2]}% power" in claim["power"], f"{cid}: power {match[2]}%"

    def floor(match: re.Match) -> None:
        assert_quoted(match[1], stats["regimes"][study]["floor"]["value"], f"{cid}: floor")

    def below_floor(match: re.Match) -> None:
        below = stats["regimes"][study]["below_floor"]
        assert any(int(match[1]) in below.get(name, []) for name in claim["compared"]), f"{cid}: seed {match[1]}"

    text = consume(text, r"p = (\d\.\d+)", rate)
    text = consume(text, r"\((\d+) seeds\)", seeds)
    text = consume(text, r"\[([+-]?\d\.\d+), ([+-]?\d\.\d+)\](?:, (inside|outside) ±(\d\.\d+))?", interval)
    text = consume(text, r"\bHolm (\d\.\d+)", holm)
    text = consume(text, r"\bp (\d\.\d+)", p_value)
    text = consume(text, r"detect (\d\.\d+) with (\d+)% power", detectable)
    text = consume(text, r"floor of (\d\.\d+)", floor)
    text = consume(text, r"\(seed (\d+)\)", below_floor)
    # what is left: the compared variants' mean test top-1, in the order the claim compares them
    means = re.findall(r"\b\d\.\d+\b", text)
    if means:
        assert len(means) == len(claim["compared"]), f"{cid}: accuracies {means} for {claim['compared']}"
        for quoted, name in zip(means, claim["compared"], strict=True):
            assert_quoted(quoted, variants[name]["test.acc1"]["mean"], f"{cid}: {name} test top-1",
                          decimals=ACCURACY_DECIMALS)
        text = re.sub(r"\b\d\.\d+\b", " ", text)
    else:
        assert claim["p_value"] is None, f"{cid}: a tested claim's row quotes its accuracies"
    if "the other way" in text:
        assert not steps[0]["right_way"], f"{cid}: 'the other way'"
    if "the same verdict after BN recalibration and on test loss" in text:
        assert claim["sensitivity"] and not claim["fragile"], cid
        assert all(reading.startswith(claim["verdict"]) for reading in claim["sensitivity"].values()), cid
    assert_no_unchecked_number(text, cid)


def test_every_claim_has_one_row_with_its_verdict_and_numbers(stats: dict, claims_yaml: dict):
    rows = claim_rows(results_block())
    by_id: dict[str, dict[str, str]] = {}
    for row in rows:
        ids = re.findall(r"`([a-z0-9-]+)`", row["claim"])
        assert len(ids) == 1, f"one claim per row: {row['claim']}"
        assert ids[0] not in by_id, f"{ids[0]} has two rows"
        by_id[ids[0]] = row
    assert set(by_id) == {claim["id"] for claim in stats["claims"]}
    for claim in stats["claims"]:
        tolerance = claims_yaml[claim["id"]].get("tolerance", DEFAULT_TOLERANCE)
        check_row(by_id[claim["id"]], claim, stats, tolerance)


def test_the_published_column_is_traceable_to_the_studies_page():
    studies = STUDIES_DOC.read_text()
    for row in claim_rows(results_block()):
        for number in NUMBER.findall(NAMES.sub(" ", row["published"])):
            assert number in studies, f"published {number!r} ({row['claim']}) is not in docs/studies.md"


def test_every_number_of_the_prose_is_the_runs(stats: dict):
    text = prose(results_block())
    claims = stats["claims"]
    tested = [claim for claim in claims if claim["p_holm"] is not None]

    def confidence(match: re.Match) -> None:  # "95% (90% for an "alike" claim ...)": TOST's interval
        level = round(stats["confidence"] * 100)
        assert (int(match[1]), int(match[2])) == (level, 100 - 2 * (100 - level)), match[0]

    def threshold(match: re.Match) -> None:
        alpha = float(match[1])
        assert alpha == ALPHA, f"the README's level {alpha}, droplab's {ALPHA}"
        for claim in tested:
            assert (claim["p_holm"] < alpha) == (claim["verdict"] in DECIDED), claim["id"]

    def counts(match: re.Match) -> None:
        published = [claim for claim in claims if not claim["mechanism"]]
        mechanism = [claim for claim in claims if claim["mechanism"]]
        decided = [claim for claim in published if claim["verdict"] in DECIDED]
        mechanism_tested = sum(claim["p_holm"] is not None for claim in mechanism)
        assert int(match[1]) == len(decided), "decided"
        assert int(match[2]) == len(published), "published findings"
        assert int(match[3]) == sum(claim["p_holm"] is not None for claim in published), "tested"
        assert (0 if match[4] == "none" else int(match[4])) == mechanism_tested, "mechanism claims tested"
        assert int(match[5]) == len(mechanism), "mechanism claims"

    def regime(match: re.Match) -> None:
        assert all(claim["regime"] == "reached" for claim in tested)

    def overfits(match: re.Match) -> None:
        found = [study["overfitting"][match[1]] for study in stats["regimes"].values()
                 if match[1] in study["overfitting"]]
        assert found, f"{match[1]} has no overfitting measurement"
        measured = found[0]
        assert measured["overfits"], match[1]
        assert (int(match[2]), int(match[3])) == (measured["lowest_val_loss_epoch"], measured["epochs"]), match[0]
        assert_quoted(match[4], measured["val_loss_rise"] * 100, f"{match[1]}: validation loss rise", significant=1)

    text = consume(text, r"(\d+)% \((\d+)% for an \"alike\" claim", confidence, required=True)
    text = consume(text, r"Holm is below (0\.\d+)", threshold, required=True)
    text = consume(text, r"(\d+) of the (\d+) published findings is decided; (\d+) were tested in their regime, "
                         r"and (none|\d+) of the (\d+) mechanism claims", counts, required=True)
    text = consume(text, r"Every run that the tested claims compare beats its study's linear classifier",
                   regime, required=True)
    text = consume(text, r"`(\w+)` \((?:lowest validation loss at )?epoch (\d+) of (\d+), \+(\d+)%",
                   overfits, required=True)
    text = consume_time(text)
    assert_no_unchecked_number(text, "the results block")


def consume_time(text: str) -> str:
    record = " ".join(REPRO.read_text().split())
    wall = re.search(r"dvc repro: (\d+ min [\d.]+ s) wall clock, (\d+) runs trained", record)
    parts = {name: re.search(rf"{name}: (\d+ min [\d.]+ s) \((\d+%)\)", record)
             for name in ("training and evaluation", "BN analysis", "everything else")}
    assert wall and all(parts.values()), f"bench/repro.md: {record}"

    def check(match: re.Match) -> None:
        assert (match[1], match[2]) == (wall[1], wall[2]), f"the README's time {match[0]!r}, bench/repro.md {record!r}"
        quoted = [(match[3], match[4]), (match[5], match[6]), (match[7], match[8])]
        assert quoted == [(part[1], part[2]) for part in parts.values()], match[0]

    return consume(text, r"`make repro` from an empty cache took (\d+ min [\d.]+ s) on a 2-core machine, (\d+) runs "
                         r"trained: training and evaluation (\d+ min [\d.]+ s) \((\d+%)\), the BN analysis "
                         r"(\d+ min [\d.]+ s) \((\d+%)\), everything else (\d+ min [\d.]+ s) \((\d+%)\)",
                   check, required=True)


def test_the_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; the manual keeps to {MAX_LINES}"


def _repository_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return [REPO / name for name in listed if name and (REPO / name).is_file()]


def test_no_file_points_outside_the_repository():
    # spelled in two parts so that this file does not contain what it looks for
    outside = [("../" + "shared").encode(), ("STUDIES" + ".md").encode()]
    offenders = [f"{path.relative_to(REPO)}: {needle.decode()}" for path in _repository_files()
                 for needle in outside if needle in path.read_bytes()]
    assert not offenders


def _manual() -> list[Path]:
    return [README, REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_manual_is_no_development_log():
    for path in _manual():
        found = re.findall(r"\bissues?\s+#?\d{1,2}\b", path.read_text(), flags=re.IGNORECASE)
        assert not found, f"{path.relative_to(REPO)}: {found}"


def _without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _without_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", _without_code_blocks(text))


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a markdown file."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", _without_code_blocks(path.read_text()), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def test_every_relative_link_resolves():
    broken = []
    for path in _manual():
        for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", _without_code(path.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(REPO)} -> {target}"
            if not resolved.exists():
                broken.append(f"{where}: no such file")
            elif REPO not in (resolved, *resolved.parents):
                broken.append(f"{where}: outside the repository")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{where}: no such heading")
    assert not broken, "\n".join(broken)


def test_the_readme_shows_a_study_figure():
    figures = re.findall(r"!\[[^\]]*\]\((report/studies/[^)]+\.png)\)", README.read_text())
    assert len(figures) == 1 and (REPO / figures[0]).is_file(), figures
