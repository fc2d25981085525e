"""`droplab` (or `python -m droplab`): the commands around the pipeline that DVC does not run itself.

  droplab repro    `dvc repro`, timed: how long it took and where the time went
  droplab runs     write the (variant, seed) pairs of params.yaml into dvc.yaml's train stage, its
                   plots, and each stage's code deps (from its script's imports)
  droplab try      the whole pipeline on the tiny config in a throwaway copy: touches nothing here
  droplab tiny     shrink params.yaml in place to the tiny config (the PR review runs it in a worktree)
  droplab sweep    the S2 dropout sweep through the DVC experiment queue, then its report
  droplab review   the markdown a pull request gets: metrics and params against a base revision,
                   the claims, and the plots rendered as images
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import version
from pathlib import Path

from droplab.atomic import write_text
from droplab.config import load_params
from droplab.dvc_yaml import PIPELINE, runs_block_of, write_runs
from droplab.errors import DroplabError, reported
from droplab.pipeline import out_paths, tryout
from droplab.pipeline.tiny import checked_params, shrink_checked
from droplab.stage_runner import PARAMS
from droplab.yaml_file import with_comments


def _repro(args: argparse.Namespace) -> None:
    from droplab.pipeline import timing

    load_params(PARAMS)  # droplab's bounded reader first: DVC expands a YAML alias bomb without limit
    sys.exit(timing.repro(args.dvc_args))


def _runs(args: argparse.Namespace) -> None:
    count = write_runs(load_params(args.params), args.pipeline)
    print(f"{args.pipeline}: {count} runs")


def _names(text: str) -> list[str]:
    """A comma-separated option's names; empty names are left for the caller to refuse."""
    return [name.strip() for name in text.split(",")]


def _tiny(args: argparse.Namespace) -> None:
    """Everything is checked before anything is written: params.yaml is rewritten only with a
    valid tiny config, and only then the runs block."""
    raw, _ = checked_params(args.params)
    tiny, params = shrink_checked(raw, args.params, None if args.keep is None else _names(args.keep))
    runs_block_of(args.pipeline)  # the pipeline file must have a runs block before params.yaml changes
    write_text(args.params, with_comments(args.params.read_text(), tiny))
    count = write_runs(params, args.pipeline)
    print(f"{args.pipeline}: {count} runs")


def _try(args: argparse.Namespace) -> None:
    if args.variants is not None:
        tryout.run(Path.cwd(), args.keep, _names(args.variants))
    else:
        tryout.run(Path.cwd(), args.keep, None if args.study == "all" else args.study)


def _sweep(args: argparse.Namespace) -> None:
    from droplab.pipeline import sweep

    params = load_params(PARAMS)
    names = _names(args.variants)
    if not all(names) or len(set(names)) < len(names):
        raise DroplabError(f"--variants {args.variants!r}: expected variant names separated by commas, each once; "
                           "a sweep with nothing to report would run every experiment for nothing")
    for name in names:
        if name not in params.variants or params.rate_key(name) != "dropout":
            why = "is not in params.yaml variants" if name not in params.variants else \
                f"takes its rates from {params.rate_key(name)}, not from `dropout`"
            raise DroplabError(f"--variants: {name!r} {why}; the sweep varies `dropout`, so it reports only the "
                               "variants that follow it")
    if args.jobs > len(args.rates) and not args.report_only:
        raise DroplabError(f"--jobs {args.jobs}: more workers than the {len(args.rates)} rates to run; at most "
                           f"{len(args.rates)}")
    report = sweep.run_sweep(args.rates, args.jobs, args.variants, args.out, queue_first=not args.report_only)
    print(report)


def _review(args: argparse.Namespace) -> None:
    from droplab.pipeline import review

    print(review.build_review(args.base, args.out))


def _positive_int(text: str) -> int:
    """Experiments at once: each is a whole training process, so more than the machine's cores
    only makes them fight for them (`--jobs 1000` started about 99 DVC workers on 2 cores)."""
    cores = os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of experiments at once, 1 or more")
    if value > cores:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {cores} experiments at once (this machine's CPU cores)")
    return value


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected rates like 0.1,0.3,0.5") from None
    if not all(0 <= rate < 1 for rate in rates):
        raise argparse.ArgumentTypeError(f"{text!r}: every rate must lie in [0, 1)")
    if len(set(rates)) < len(rates):
        raise argparse.ArgumentTypeError(f"{text!r}: a rate is listed twice; the sweep runs each rate once")
    return rates


DEFAULTS = argparse.ArgumentDefaultsHelpFormatter  # every option's help ends with its default


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="droplab", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--version", action="version", version=f"droplab {version('droplab')}")
    commands = root.add_subparsers(dest="command", required=True)
    repro = commands.add_parser("repro", help="dvc repro, timed: the time in all, in training, in the rest")
    repro.add_argument("dvc_args", nargs=argparse.REMAINDER, help="passed on to dvc repro")
    repro.set_defaults(func=_repro)
    runs = commands.add_parser("runs", formatter_class=DEFAULTS, help="write params.yaml's runs and plots, and "
                               "each stage's code deps, into dvc.yaml (between its marker comments)")
    runs.add_argument("--params", type=Path, default=PARAMS, help="the params file to read")
    runs.add_argument("--pipeline", type=Path, default=PIPELINE, help="the pipeline file to rewrite")
    runs.set_defaults(func=_runs)
    about = ("the whole pipeline, download to report, on one study's tiny config (a few hundred images, one "
             "epoch, two seeds), or the named variants', in a throwaway copy of this checkout; nothing here is "
             "written to")
    try_ = commands.add_parser("try", formatter_class=DEFAULTS, help=about, description=about)
    try_.add_argument("--keep", type=out_paths.folder, default=None, help="keep the copy in this new folder "
                      "(default: a temporary folder, deleted at the end)")
    chosen = try_.add_mutually_exclusive_group()
    chosen.add_argument("--study", default=tryout.DEFAULT_STUDY, help="the study to run (its variants only), or "
                        "`all` (every variant: several times longer)")
    chosen.add_argument("--variants", default=None, help="comma-separated variants to run instead of a study, "
                        "each at its home study's tiny setting (a variant you just added, or one of each family)")
    try_.set_defaults(func=_try)
    about = ("EDITS params.yaml and dvc.yaml in place to the tiny config (comments kept); undo with `git checkout "
             "params.yaml dvc.yaml`. To try droplab without editing anything, use `droplab try`")
    tiny = commands.add_parser("tiny", formatter_class=DEFAULTS, help=about, description=about)
    tiny.add_argument("--keep", default=None, help="comma-separated variants to keep (default: all)")
    tiny.add_argument("--params", type=Path, default=PARAMS, help="the params file to shrink")
    tiny.add_argument("--pipeline", type=Path, default=PIPELINE, help="the pipeline whose runs block is rewritten")
    tiny.set_defaults(func=_tiny)
    sweep = commands.add_parser("sweep", formatter_class=DEFAULTS,
                                help="queue the dropout sweep as DVC experiments, run them, report")
    sweep.add_argument("--rates", type=_rates, default=[round(0.1 * i, 1) for i in range(1, 10)],
                       help="comma-separated dropout rates")
    sweep.add_argument("--jobs", type=_positive_int, default=1, help="experiments run at once (dvc queue start -j)")
    sweep.add_argument("--variants", default="s2_cnn", help="comma-separated variants to report: variants whose "
                       "rate follows `dropout` (S2's MLP sweeps its rates inside the pipeline)")
    sweep.add_argument("--out", type=out_paths.folder, default="report/sweep",
                       help="where the sweep report is written")
    sweep.add_argument("--report-only", action="store_true", help="skip queueing; report the finished experiments")
    sweep.set_defaults(func=_sweep)
    review = commands.add_parser("review", formatter_class=DEFAULTS, help="markdown for a pull request comment "
                                 "(CML)")
    review.add_argument("--base", default="main", help="git revision to compare against")
    review.add_argument("--out", type=out_paths.folder, default="review",
                        help="where report.md and its plots go")
    review.set_defaults(func=_review)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with reported(args.command):
        args.func(args)


if __name__ == "__main__":
    main()
