"""What does Prefect cost? The same six stages as plain function calls vs through the `pipeline` flow.

Runs alternate (plain, flow, plain, flow, ...) on fresh workspaces so that machine noise hits both
sides alike; prints each pair and the median ratio flow/plain. The ephemeral server's start-up is
measured separately (a trivial flow before anything else) and is not part of the ratio.

Training time varies by several percent between identical runs on a small machine, which can hide
(or fake) a few percent of overhead in the ratio. So each flow run is also split, within the run,
into the time its tasks spent running (Prefect's own `total_run_time` per task run) and the rest:
the orchestration's own cost, measured without a second run to compare against.

    python bench/orchestration.py [--pairs 2] [--set pretrain.max_steps=100 ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, SCRATCH, median  # noqa: E402  (sets the environment before Prefect loads)

DEFAULT_SET = ["pretrain.max_steps=100", "pretrain.save_steps=50", "finetune.epochs=2"]


def plain_run(config) -> None:
    """The pipeline without Prefect: the same stage functions as the flow, called directly, in order."""
    from core.fingerprint import code_version, hash_json
    from core.tracking import Tracking
    from tasks.data.prepare import prepare_data
    from tasks.judging.gate import gate
    from tasks.kinds.classification.evaluate import evaluate
    from tasks.kinds.classification.finetune import finetune
    from tasks.optimize import optimize
    from tasks.registry.model_card import write_model_card
    from tasks.registry.promotion import promote
    from tasks.registry.register import register
    from tasks.results import Lineage
    from tasks.training.pretrain import pretrain
    from tasks.training.tokenizer import train_tokenizer

    ws = config.workspace.resolved()
    tracking = Tracking.resolve(config.tracking, ws)
    lineage = Lineage(config_hash=hash_json(config), code_version=code_version())
    data = prepare_data(config.data, ws)
    tok = train_tokenizer(config.tokenizer, data, ws)
    enc = pretrain(config.pretrain, data, tok, tracking, ws)
    model = finetune(config.finetune, data, tok, enc, tracking, ws)
    report = evaluate(config.evaluate, data, model, tracking, ws)
    optimized = optimize(config.optimize, data, model, tracking, ws)
    registered = register(config.registry, data, model, report, lineage, tracking, ws, optimized=optimized)
    verdict = gate(config.gate, data, registered, report, tracking, ws, optimization_passed=optimized.passed)
    write_model_card(config.model_dump(mode="json"), data, registered, report, verdict, tracking)
    if verdict.passed:
        promote(registered.name, registered.version, tracking)


def task_seconds(flow_run_id) -> float:
    """Seconds the flow run's task runs spent running, by Prefect's own accounting."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sum(run.total_run_time.total_seconds() for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], help="config override (repeatable)")
    args = parser.parse_args()

    from prefect import flow

    from flows.config import load_config
    from flows.pipeline import pipeline

    @flow
    def noop() -> int:
        return 1

    import transformers.trainer  # noqa: F401  (import cost is paid before timing, for both sides)

    t0 = time.perf_counter()
    noop()
    server_start = time.perf_counter() - t0
    print(f"ephemeral Prefect server start + first flow: {server_start:.1f} s (not in the ratio)")

    overrides = [*DEFAULT_SET, *args.set]
    ratios, shares = [], []
    for i in range(args.pairs):
        times = {}
        # Alternate which side goes first, so warm caches and background load favour neither.
        for mode in ("plain", "flow") if i % 2 == 0 else ("flow", "plain"):
            config = load_config(
                ROOT / "configs" / "tiny.yaml", [f"workspace.root={SCRATCH / f'{mode}-{i}'}", *overrides]
            )
            t0 = time.perf_counter()
            if mode == "plain":
                plain_run(config)
            else:
                flow_run_id = pipeline(config, return_state=True).state_details.flow_run_id
            times[mode] = time.perf_counter() - t0
        ratios.append(times["flow"] / times["plain"])
        overhead = times["flow"] - task_seconds(flow_run_id)
        shares.append(overhead / times["flow"])
        print(
            f"pair {i + 1}: plain {times['plain']:.1f} s, flow {times['flow']:.1f} s, ratio {ratios[-1]:.3f}; "
            f"flow outside its tasks {overhead:.1f} s ({shares[-1]:.1%})"
        )
    print(f"\nflow/plain ratio (median of {args.pairs}): {median(ratios):.3f}   target <= 1.05")
    print(
        f"orchestration share of a flow run (median): {median(shares):.1%}   (ratio it implies: "
        f"{1 / (1 - median(shares)):.3f})"
    )


if __name__ == "__main__":
    main()
