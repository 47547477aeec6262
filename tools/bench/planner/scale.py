"""Planner cost growth in stages and microbatches: `perseus plan` as a user runs it.

Usage: python3 tools/bench/planner/scale.py [--base COMMIT] [--work DIR] [--cases 8x48,16x48,...]
       [--baseline-cases ...] [--runs N] [--plan-args "--exact-budget 0"] [--cli built|dev]

Profiles: the paper's GPT-3 175B A100 stage rows repeated to N stages (stage s takes the rows of
stage s mod 8, so the middle stages are exactly identical, as homogeneous layers are); "a40-96" is
the A40 profile itself (8 stages, M = 96, tau = 0.1 ms); a trailing "j" (e.g. 32x36j) adds
+-0.05 % seeded jitter to every row. tau = 1 ms and blocking power 83.64 W otherwise. Each case
runs `bin/perseus plan` with default flags for this tree and, in the same run, for the baseline
commit (a detached `git worktree` under --work sharing this tree's node_modules). Prints one row per
run (wall and CPU s, peak RSS MiB from /usr/bin/time, points, plans.jsonl bytes, outcome, load average),
then per case and tree the range over runs, and least-squares exponents of CPU time (median over runs)
in N (at fixed M) and in M (at fixed N). --plan-args adds flags to both trees' `perseus plan` (e.g.
"--exact-budget 0" to time the planner without the fixed-budget exact polish). --cli built (the
default) builds both trees (`nx run-many -t build`) and runs the compiled command a user installs
(packages/cli/bin/perseus.cjs); --cli dev runs bin/perseus, which transpiles the TypeScript sources
through tsx at every start. Emulated: profile tables, no GPU.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "data" / "sosp24" / "stage_profile"


def write_profile(work: Path, case: str) -> tuple[Path, int, int, float, float]:
    if case.startswith("a40-"):
        return DATA / "gpt3-175b+a40_bf16.csv", 8, int(case[4:]), 1e-4, 70.38
    jitter = case.endswith("j")
    n, m = (int(x) for x in case.rstrip("j").split("x"))
    rows = list(csv.DictReader(open(DATA / "gpt3-175b+a100_sxm_bf16.csv")))
    rng = random.Random(n * 1000 + m)
    path = work / f"a100-{n}stages{'-jitter' if jitter else ''}.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stage", "instruction", "frequency", "time", "energy"])
        for s in range(n):
            for r in rows:
                if int(r["stage"]) != s % 8:
                    continue
                k = (1 + 0.0005 * (2 * rng.random() - 1)) if jitter else 1.0
                w.writerow([s, r["instruction"], r["frequency"], float(r["time"]) * k, float(r["energy"]) * k])
    return path, n, m, 1e-3, 83.64


def command(tree: Path, cli: str) -> list[str]:
    if cli == "dev":
        return [str(tree / "bin" / "perseus")]
    return ["node", str(tree / "packages" / "cli" / "bin" / "perseus.cjs")]


def build(tree: Path) -> None:
    """Compiles every package of `tree` (the installed command runs the built dist/)."""
    env = {**os.environ, "NX_DAEMON": "false", "NX_NO_CLOUD": "true", "NX_TUI": "false", "CI": "true"}
    subprocess.run(["npx", "nx", "run-many", "-t", "build", "--outputStyle=static"], cwd=tree, env=env,
                   check=True, capture_output=True)


def link_node_modules(base: Path) -> None:
    """The baseline worktree shares this tree's node_modules, except its own @perseus packages:
    node_modules/@perseus/* are links into packages/, and the built command resolves them there."""
    nm = base / "node_modules"
    if nm.is_symlink():
        nm.unlink()
    nm.mkdir(exist_ok=True)
    for entry in (ROOT / "node_modules").iterdir():
        link = nm / entry.name
        if entry.name == "@perseus" or link.exists() or link.is_symlink():
            continue
        link.symlink_to(entry)
    own = nm / "@perseus"
    own.mkdir(exist_ok=True)
    for pkg in (base / "packages").iterdir():
        if (pkg / "package.json").exists() and not (own / pkg.name).exists():
            (own / pkg.name).symlink_to(pkg)


def run(tree: Path, work: Path, case: str, tag: str, extra: list[str], cli: str) -> dict[str, object]:
    profile, n, m, tau, pb = write_profile(work, case)
    out = work / f"out-{tag}-{case}"
    shutil.rmtree(out, ignore_errors=True)  # the baseline's CLI has no --force
    cmd = [
        "/usr/bin/time", "-f", "%e %M %U %S", *command(tree, cli), "plan", "--profile", str(profile),
        "--stages", str(n), "--microbatches", str(m), "--unit-time", str(tau), "--blocking-power", str(pb),
        "--out", str(out), *extra,
    ]
    load = open("/proc/loadavg").read().split()[0]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=tree)
    wall, rss_kb, user, sys_s = (float(x) for x in p.stderr.strip().splitlines()[-1].split())
    plans = out / "plans.jsonl"
    points = sum(1 for _ in open(plans)) if p.returncode == 0 and plans.exists() else 0
    err = [l for l in p.stderr.splitlines() if "internal" in l or "Error" in l]
    return {
        "case": case, "tree": tag, "wall_s": wall, "cpu_s": user + sys_s, "rss_mib": rss_kb / 1024, "points": points,
        "plans_bytes": plans.stat().st_size if points else 0,
        "outcome": "ok" if p.returncode == 0 else (err[0][:80] if err else f"exit {p.returncode}"),
        "load": load,
    }


def exponent(xs: list[float], ys: list[float]) -> float:
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="7e78e2a")
    ap.add_argument("--work", default="/tmp/perseus-bench-planner-scale")
    ap.add_argument("--cases", default="4x48,8x48,16x48,32x48,8x24,8x96,8x192,32x24,32x36,32x36j,16x192,32x96,a40-96")
    ap.add_argument("--baseline-cases", default="4x48,8x48,16x48,32x48,8x24,8x96,8x192")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--plan-args", default="", help="extra flags for both trees' perseus plan")
    ap.add_argument("--cli", choices=["built", "dev"], default="built",
                    help="built: the compiled command (as installed); dev: bin/perseus through tsx")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base"
    if not base.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), a.base], check=True)
    link_node_modules(base)
    if a.cli == "built":
        for tree in (ROOT, base):
            build(tree)
    rows = []
    extra = a.plan_args.split()
    print(f"perseus plan {' '.join(extra)}; base {a.base}; {a.cli} command")
    print("| case | tree | wall s | CPU s | peak RSS MiB | points | plans.jsonl MB | outcome | load |\n|---|---|---|---|---|---|---|---|---|")
    for case in a.cases.split(","):
        for tag, tree in [("this", ROOT), ("base", base)]:
            if tag == "base" and case not in a.baseline_cases.split(","):
                continue
            for _ in range(a.runs):
                r = run(tree, work, case, tag, extra, a.cli)
                rows.append(r)
                print(f"| {case} | {tag} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['rss_mib']:.0f} | {r['points']} | {int(r['plans_bytes']) / 1e6:.2f} | {r['outcome']} | {r['load']} |")
                sys.stdout.flush()
    print("\n| case | tree | runs | CPU s (range) | wall s (range) | peak RSS MiB (range) |\n|---|---|---|---|---|---|")
    for case in a.cases.split(","):
        for tag in ("this", "base"):
            rs = [r for r in rows if r["case"] == case and r["tree"] == tag and r["outcome"] == "ok"]
            if rs:
                rng = lambda k, f: f"{min(float(r[k]) for r in rs):{f}}–{max(float(r[k]) for r in rs):{f}}"
                print(f"| {case} | {tag} | {len(rs)} | {rng('cpu_s', '.1f')} | {rng('wall_s', '.1f')} | {rng('rss_mib', '.0f')} |")
    for tag in ("this", "base"):
        # CPU time: the box is shared, so wall time mostly measures the neighbours' load.
        ok = {}
        for case in a.cases.split(","):
            cpu = sorted(float(r["cpu_s"]) for r in rows if r["case"] == case and r["tree"] == tag and r["outcome"] == "ok")
            if cpu:
                ok[case] = cpu[len(cpu) // 2]
        for label, keys, axis in [
            ("stages (M=48)", ["4x48", "8x48", "16x48", "32x48"], 0),
            ("microbatches (N=8)", ["8x24", "8x48", "8x96", "8x192"], 1),
        ]:
            have = [k for k in keys if k in ok]
            if len(have) >= 2:
                xs = [float(k.split("x")[axis]) for k in have]
                print(f"{tag}: CPU time ~ {label.split()[0]}^{exponent(xs, [ok[k] for k in have]):.2f} over {', '.join(have)} ({label})")


if __name__ == "__main__":
    main()
