"""Runs lowtime 0.3.0 (the Perseus paper's solver) on one case and streams its plans.

Usage: python lowtime_runner.py PROFILE.csv NUM_STAGES NUM_MBS P2P_POWER_W UNIT_TIME_S OUT.jsonl

Builds the problem the way lowtime's own `examples/perseus.py` does (Pareto filter on measured
energy with the 0.95 noise factor when <= 3 options survive, then effective energy, i.e. minus
blocking power over each option's time, ExponentialModel "best" fit,
Synchronous1F1B, PhillipsDessouky) but adds the pipeline dependencies directly instead of testing
every pair of instructions, so lowtime is not charged for an O(V^2) Python loop. Output: a header
line with each stage's instruction order, then one line per iteration with the knobs that changed,
then a summary line (wall time, peak RSS).
"""

from __future__ import annotations

import csv
import json
import resource
import sys
import time
from collections import defaultdict

import networkx as nx
from lowtime.cost_model import ExponentialModel
from lowtime.graph_utils import add_sink_node, add_source_node
from lowtime.operation import CandidateExecutionOptions, ExecutionOption, OperationSpec
from lowtime.perseus.instruction import Backward, Forward
from lowtime.perseus.schedule import Synchronous1F1B
from lowtime.solver import PhillipsDessouky


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    profile, n_stages, n_mbs, p2p, unit, out_path = sys.argv[1:7]
    n_stages, n_mbs, p2p, unit = int(n_stages), int(n_mbs), float(p2p), float(unit)
    t0 = time.time()
    rows = defaultdict(list)
    with open(profile) as f:
        for r in csv.DictReader(f):
            rows[(int(r["stage"]), r["instruction"])].append(r)
    spec = defaultdict(dict)
    for inst in (Forward, Backward):
        for s in range(n_stages):
            options = [
                ExecutionOption[int](
                    real_time=float(r["time"]), unit_time=unit, cost=float(r["energy"]), knob=int(float(r["frequency"]))
                )
                for r in rows[(s, inst.__name__.lower())]
            ]
            # As the paper artifact does: Pareto-filter on the measured energy, then turn the
            # survivors' cost into effective energy (minus blocking power over their time).
            cand = CandidateExecutionOptions[int](options=options)
            if len(cand.options) <= 3:
                cand = CandidateExecutionOptions[int](options=options, noise_factor=0.95)
            for o in cand.options:
                o.cost -= p2p * o.quant_time * o.unit_time
            spec[s][inst] = OperationSpec[int](options=cand, cost_model=ExponentialModel(cand, search_strategy="best"))

    dag = nx.DiGraph()
    node = 2
    stages = []
    ids = {}
    for s in range(n_stages):
        insts = list(Synchronous1F1B(num_stages=n_stages, num_micro_batches=n_mbs, stage_id=s, operation_spec_map=spec[s]))
        prev = None
        for inst in insts:
            dag.add_node(node, op=inst)
            ids[(type(inst).__name__, s, inst.micro_batch_id)] = node
            if prev is not None:
                dag.add_edge(prev, node)
            prev = node
            node += 1
        stages.append(insts)
    for m in range(n_mbs):
        for s in range(n_stages - 1):
            dag.add_edge(ids[("Forward", s, m)], ids[("Forward", s + 1, m)])
            dag.add_edge(ids[("Backward", s + 1, m)], ids[("Backward", s, m)])
    add_source_node(dag, 0)
    add_sink_node(dag, 1)
    dag.graph["source_node"] = 0
    dag.graph["sink_node"] = 1
    t_setup = time.time() - t0

    out = open(out_path, "w")
    out.write(json.dumps({"order": [[[type(i).__name__.lower(), i.micro_batch_id] for i in st] for st in stages]}) + "\n")
    last = [[None] * len(st) for st in stages]
    t1 = time.time()
    iterations = 0
    for it, result in enumerate(PhillipsDessouky(dag).run()):
        changes = []
        for s, st in enumerate(stages):
            for j, inst in enumerate(st):
                k = inst.assigned_knob
                if k != last[s][j]:
                    changes.append([s, j, k])
                    last[s][j] = k
        out.write(json.dumps({"i": it, "q": result.quant_time, "t": result.real_time, "cost": result.cost, "w": time.time() - t0, "c": cpu_s(), "d": changes}) + "\n")
        out.flush()
        iterations = it + 1
    solve = time.time() - t1
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.write(json.dumps({"done": True, "iterations": iterations, "setup_s": t_setup, "solve_s": solve, "wall_s": time.time() - t0, "cpu_s": cpu_s(), "maxrss_mib": rss_kb / 1024}) + "\n")
    out.close()


if __name__ == "__main__":
    main()
