"""The latency and --amp tables of docs/performance.md:
`python -m common.perf_table [--threads N] [--batch-size B] [-- flags]`.

Runs every script's `--complexity` and `--benchmark` (the model and its `--baseline` timed interleaved in one
process, common/complexity.py) as subprocesses at the papers' main configuration and prints a markdown table:
params and GFLOPs beside the papers' figures, the FLOPs ratio to the baseline beside the latency ratios (batch 1,
forward and forward+backward) and whether the forward ratio is within 1.15 x the FLOPs ratio. Flags after `--`
(e.g. `--amp`, `--channels-last`, `--compile`) go to every `--benchmark`. About 10 minutes on 2 idle CPU cores.

`--amp-speedup` also times every row with `--amp` (bf16 autocast) and prints a second table: training clips/s
(forward+backward at --batch-size) in fp32 and in bf16, for the model and its baseline, and whether the model's
speed-up reaches issue 8's 1.5 x (its criterion is for a GPU: run it there with e.g. `--batch-size 8`).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1.15  # the criterion: latency ratio <= 1.15 x FLOPs ratio
AMP_SPEEDUP = 1.5  # the criterion: --amp training throughput >= 1.5 x fp32 (ResNet-50 models, on a GPU)

# (script, flags): the configurations the papers' figures refer to; the papers' own numbers as printed
ROWS = [
    ("ean", [], "- / 37G (Table 1, EAN_RGB+LMC)"),
    ("ean", ["--no-lmc"], "36.0M / 36.1G (Table 5)"),
    ("can", ["--num-classes", "48"], "25.3M / 35.1G (Table 10)"),
    ("stw", [], "- / 33.5G (Table 1)"),
    ("stasta", [], "24.8M / 40G (Table 1)"),
    ("stmanet", [], "none given (Sec. 4.5: +24 % FLOPs)"),
]


def run_json(argv, env):
    """Last JSON line a script prints, or {"error": last stderr line}."""
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:200]}


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="OMP/MKL threads of the runs (default: torch's)")
    p.add_argument("--batch-size", type=int, default=2, help="clips per batch for the throughput figures")
    p.add_argument("--scripts", nargs="+", default=None, help="only these scripts (default: all rows)")
    p.add_argument("--json", default=None, help="also write the raw results (one JSON object per row) here")
    p.add_argument("--amp-speedup", action="store_true",
                   help="also time every row with --amp: training clips/s fp32 vs bf16 (a second table)")
    p.add_argument("extra", nargs="*", help="after --: flags for every --benchmark (--amp, --channels-last, ...)")
    args = p.parse_args(argv)
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    rows = [r for r in ROWS if not args.scripts or r[0] in args.scripts]
    results = []
    for script, flags, paper in rows:
        comp = run_json([f"{script}.py", "--complexity", *flags], env)
        bench_argv = [f"{script}.py", "--benchmark", "--batch-size", str(args.batch_size), *flags, *args.extra]
        results.append({"script": script, "flags": flags, "paper": paper, "complexity": comp,
                        "benchmark": run_json(bench_argv, env)})
        if args.amp_speedup:
            results[-1]["amp"] = run_json(bench_argv + ["--amp"], env)
        print(f"done: {script} {' '.join(flags)}", file=sys.stderr, flush=True)

    device = next((r["benchmark"]["device"] for r in results if "device" in r["benchmark"]), "?")
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    command = " ".join(["python -m common.perf_table", *(argv if argv is not None else sys.argv[1:])])
    print(f"Machine: {device}; torch {torch.__version__}; {when}; `{command}`. Latency: batch 1, median of "
          f"interleaved repeats (ratio: median of per-round ratios; in brackets the same for process CPU time); "
          f"throughput: clips/s at batch {args.batch_size}.\n")
    print("| script (flags) | params (M) | GFLOPs | paper params / GFLOPs | baseline GFLOPs | FLOPs ratio | "
          "latency ms: model / baseline | latency ratio fwd (CPU time) | fwd+bwd (CPU time) | "
          f"clips/s fwd, train | fwd ratio <= {TOLERANCE} x FLOPs ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        c, b = r["complexity"], r["benchmark"]
        name = " ".join([r["script"], *r["flags"]])
        if "error" in b or "error" in c:
            print(f"| {name} | {c.get('params_m', '-')} | {c.get('gflops', '-')} | {r['paper']} | "
                  f"error: {b.get('error') or c.get('error')} |||||||")
            continue
        cpu = lambda k: f" ({fmt(b[k], 2)})" if k in b else ""
        ok = b["latency_ratio"] <= TOLERANCE * b["flops_ratio"]
        print(f"| {name} | {c['params_m']} | {c['gflops']} | {r['paper']} | {b['baseline_gflops']} | "
              f"{fmt(b['flops_ratio'], 3)} | {fmt(b['latency_ms'], 1)} / {fmt(b['baseline_latency_ms'], 1)} | "
              f"{fmt(b['latency_ratio'], 3)}{cpu('latency_ratio_cpu')} | "
              f"{fmt(b['train_latency_ratio'], 3)}{cpu('train_latency_ratio_cpu')} | "
              f"{b['throughput']}, {b['train_throughput']} | {'yes' if ok else 'no'} "
              f"({fmt(b['latency_ratio'] / b['flops_ratio'], 2)} x) |")
        errors = [f"{k}: {v}" for k, v in b.items() if k.endswith("compile_error")]
        if errors:
            print(f"|  | compile failed, eager timing: {'; '.join(errors)} |||||||||")
    if args.amp_speedup:
        print_amp_table(results, args.batch_size)
    if args.json:
        with open(args.json, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


def print_amp_table(results, batch):
    """Training clips/s (forward+backward, batch `batch`) in fp32 and with --amp, model and baseline."""
    print(f"\nTraining throughput, clips/s at batch {batch}, fp32 vs --amp (bf16 autocast), same machine:\n")
    print("| script (flags) | device | model fp32 | model bf16 | speed-up | baseline fp32 | baseline bf16 | speed-up | "
          f"model speed-up >= {AMP_SPEEDUP} x |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        name, b, a = " ".join([r["script"], *r["flags"]]), r["benchmark"], r["amp"]
        if "error" in b or "error" in a:
            print(f"| {name} | error: {b.get('error') or a.get('error')} ||||||||")
            continue
        up, base_up = a["train_throughput"] / b["train_throughput"], \
            a["baseline_train_throughput"] / b["baseline_train_throughput"]
        print(f"| {name} | {a['device']} | {b['train_throughput']} | {a['train_throughput']} | {fmt(up)} x | "
              f"{b['baseline_train_throughput']} | {a['baseline_train_throughput']} | {fmt(base_up)} x | "
              f"{'yes' if up >= AMP_SPEEDUP else 'no'} |")


if __name__ == "__main__":
    main()
