"""`python -m bench [--quick] [--out FILE] [--only NAME ...]`: run the benchmarks, print one markdown table.
`python -m bench --gpu [--quick] [--device cpu] [--out FILE]`: the GPU check (bench/gpu_check.py) instead."""

from __future__ import annotations

import argparse
import os

from droplab.pipeline import out_paths

COLUMNS = ["benchmark", "case", "measured", "baseline", "ratio", "note"]
BENCHMARKS = ("train", "efficiency", "pins", "pipeline", "decode")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, numbers mean nothing")
    parser.add_argument("--out", type=out_paths.file, help="also write the table here (markdown)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS)
    parser.add_argument("--gpu", action="store_true", help="the GPU check instead of the CPU benchmarks")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="--gpu on the CPU: the check's code as a smoke test, without peak or sync counts")
    parser.add_argument("--digest", action="store_true", help=argparse.SUPPRESS)  # the GPU check's fresh process
    args = parser.parse_args()  # torch and the benchmarks load only after it: a bad argument is refused at once
    if args.digest:
        from bench import gpu_check

        print(gpu_check.weights_digest(args.device, args.quick))
        return
    if args.gpu:
        gpu(args)
        return
    import pandas as pd
    import torch

    from bench import decode, efficiency, machine, pin_cost, pipeline, train_throughput

    torch.set_num_threads(os.cpu_count() or 1)  # the same for droplab and every baseline
    description = machine.describe()  # before the benchmarks load the machine themselves

    rows: list[dict[str, str]] = []
    if "train" in args.only or "efficiency" in args.only:  # efficiency reuses the measured training speeds
        throughputs = train_throughput.run(args.quick)
        rows += train_throughput.rows(throughputs) if "train" in args.only else []
        rows += efficiency.run(throughputs) if "efficiency" in args.only else []
    rows += pin_cost.run(args.quick, rounds=2 if args.quick else 3) if "pins" in args.only else []
    rows += pipeline.run(args.quick) if "pipeline" in args.only else []
    rows += decode.run(args.quick) if "decode" in args.only else []

    mode = "quick (smoke test)" if args.quick else "full"
    text = (f"Machine: {description}. Mode: {mode}. Speeds are medians of repeats after a warm-up; "
            f"ratios are against the baseline measured in the same run.\n\n"
            f"{pd.DataFrame(rows, columns=COLUMNS).to_markdown(index=False)}\n")
    print(text)
    if args.out:
        args.out.write_text(text)


def gpu(args: argparse.Namespace) -> None:
    import pandas as pd
    import torch

    from bench import gpu_check

    if args.device == "cuda" and not torch.cuda.is_available():
        parser_error = ("python -m bench --gpu: this machine has no CUDA GPU. Run it on a GPU machine; "
                        "--device cpu runs the check's code here as a smoke test")
        raise SystemExit(parser_error)
    description, rows = gpu_check.run(torch.device(args.device), args.quick)
    mode = "quick (smoke test)" if args.quick else "full"
    text = (f"Machine: {description}. Mode: {mode}. GPU check on synthetic 3x64x64, 200-class data.\n\n"
            f"{pd.DataFrame(rows, columns=['check', 'case', 'result', 'note']).to_markdown(index=False)}\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
