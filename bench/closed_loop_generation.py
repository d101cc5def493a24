"""Does the loop close for a generator? monitor -> drift event -> retrain -> gate -> promote, on the demo's shifted
instructions (the generation twin of `bench/closed_loop.py`).

1. Train and register a generator champion with the tiny generation preset (`configs/tiny-generation.yaml`).
2. Serve 10 windows of 200 prompts from the reference distribution that the champion never saw, and one of 200
   with 30% shifted prompts (new products, aspects, slang, more negation), into the prediction log as serving's
   journal writes them (the registered pyfunc answers, greedy, 48 tokens); run the `monitor` flow on each. Count
   false alarms; the shifted window must be flagged and its `zero2one.drift.detected` event reach the Prefect server.
3. Production moves on: the next window (700 prompts, 70% shifted) comes back with reference answers, and
   `monitor(retrain_on_drift=True)` instruction-tunes the champion on its chats plus those pairs; the pipeline's
   gate (challenger vs champion on the champion's test prompts plus the new test split) decides on promotion.
4. Old champion vs new model on 200 shifted prompts no window contained, and on the reference test split (chrF,
   exact match). Check: the retrained model must be promoted and beat the old champion on shifted prompts (exit 1).

    python bench/closed_loop_generation.py [--workspace DIR] [--set sft.epochs=3 ...] [--retrain-epochs 2]

With --workspace pointing at a workspace that already has a generator champion, step 1 is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, SCRATCH  # noqa: E402  (sets the environment before Prefect loads)
from bench.closed_loop import drift_events  # noqa: E402
from core.registry_names import DEFAULT_MODEL_NAMES  # noqa: E402

MODEL = DEFAULT_MODEL_NAMES["generation"]
DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)
WINDOW, MAX_TOKENS = 200, 48


def serve(ws, frame, start: datetime, with_references: bool) -> None:
    """What serving's journal writes for each answered request: the champion's pyfunc answers, the log records it."""
    import mlflow
    import pandas as pd

    from core.prediction_log import append_predictions, log_uri

    version = str(mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion").version)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
    prompts = frame["text"].tolist()
    answers = model.predict(pd.DataFrame({"prompt": prompts}), params={"max_new_tokens": MAX_TOKENS})["response"]
    details = {"endpoint": "completions", "messages": None, "params": {"max_tokens": MAX_TOKENS}}
    rows = pd.DataFrame(
        {
            "timestamp": [start + timedelta(seconds=i) for i in range(len(prompts))],
            "text": prompts,
            "label": "stop",
            "score": 1.0,
            "probs": "{}",
            "model_name": MODEL,
            "model_version": version,
            "true_label": frame["true_label"].tolist() if with_references else None,
            "response": answers.tolist(),
            "generation": json.dumps(details),
        }
    )
    append_predictions(log_uri(ws), rows)


def scores(model_dir: str, frame) -> tuple[float, float]:
    """chrF and exact match of greedy answers, as the evaluation and the gate score them."""
    from models.generator import TextGenerator
    from tasks.judging.scoring import score_answers

    answers = TextGenerator(model_dir).generate(frame["text"].tolist(), MAX_TOKENS)
    s = score_answers(answers, frame["true_label"].tolist())
    return s.chrf, s.exact_match


def _frame(path: Path):
    import pandas as pd

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return pd.DataFrame({"text": [r["prompt"] for r in rows], "true_label": [r["response"] for r in rows]})


def _data(ws, reference):
    """Fresh reference-like prompts (another seed of the same grammar) and shifted ones, none in the reference."""
    import pandas as pd

    from tasks.kinds.generation.demo import write_demo_instructions

    seen = set(pd.concat(reference.values())["text"])
    paths = write_demo_instructions(Path(ws.root, "bench-fresh"), {"train": 3000}, n_corpus=10, n_shifted=760, seed=1)
    fresh = _frame(paths.instructions / "train.jsonl")
    fresh = fresh[~fresh["text"].isin(seen)].sample(frac=1, random_state=0).reset_index(drop=True)
    shifted = _frame(paths.instructions_shifted).sample(frac=1, random_state=0).reset_index(drop=True)
    return fresh, shifted[:60], shifted[60:560], shifted[560:760]


def _windows(ws, config, fresh, shifted_drift):
    """10 reference-like windows and one with 30% shifted prompts, each served and monitored."""
    import pandas as pd

    from flows.monitor import monitor
    from tasks.monitoring.windows import WindowSource

    windows = [(f"reference-like {i + 1}", fresh[i * WINDOW : (i + 1) * WINDOW]) for i in range(10)]
    rest = fresh[10 * WINDOW :]
    mixed = pd.concat([rest[: WINDOW - len(shifted_drift)], shifted_drift]).sample(frac=1, random_state=1)
    windows.append(("30% shifted", mixed))
    false_alarms, results, times = 0, {}, []
    for hour, (name, frame) in enumerate(windows):
        start = DAY + timedelta(hours=hour)
        serve(ws, frame, start, with_references=False)
        t0 = time.perf_counter()
        window = WindowSource(since=start, until=start + timedelta(hours=1))
        result = monitor(model_name=MODEL, window=window, pipeline_config=config)
        times.append(time.perf_counter() - t0)
        report = result.report
        results[name] = result
        fired = ", ".join(s.name for s in report.fired) or "-"
        print(f"{name:18s} {report.status:9s} {len(report.fired)}/{len(report.signals)} signals ({fired})", flush=True)
        false_alarms += name.startswith("reference") and report.status == "drift"
    return false_alarms, results, times, rest[WINDOW - len(shifted_drift) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", default=str(SCRATCH / "closed-loop-generation"))
    parser.add_argument("--set", action="append", default=[], help="pipeline config override (repeatable)")
    parser.add_argument("--retrain-epochs", type=float, default=2, help="SFT epochs of the retraining")
    args = parser.parse_args()

    import pandas as pd

    from core.tracking import Tracking
    from flows.config import load_config
    from flows.monitor import monitor
    from flows.pipeline import pipeline
    from tasks.monitoring.champion import find_champion
    from tasks.monitoring.generation_detect import load_chat_reference
    from tasks.monitoring.windows import WindowSource

    config = load_config(ROOT / "configs" / "tiny-generation.yaml", [f"workspace.root={args.workspace}", *args.set])
    ws = config.workspace.resolved()
    tracking = Tracking.resolve(config.tracking, ws)
    tracking.activate()
    t_start = time.perf_counter()
    client = tracking.client()
    if (
        not client.search_registered_models(f"name = '{MODEL}'")
        or "champion" not in client.get_registered_model(MODEL).aliases
    ):
        t0 = time.perf_counter()
        run = pipeline(config)
        print(f"champion: v{run.registered.version}, gate {run.gate_summary} ({time.perf_counter() - t0:.0f} s)")
        if run.promotion is None:
            sys.exit("no champion: the first model did not pass the gate, so there is nothing to monitor")
    old = find_champion(tracking, MODEL)
    reference = load_chat_reference(old.data_uri)
    fresh, shifted_drift, shifted_labeled, shifted_test = _data(ws, reference)

    events_since = datetime.now(timezone.utc)
    false_alarms, results, check_times, rest = _windows(ws, config, fresh, shifted_drift)
    flagged = results["30% shifted"]
    events = drift_events(events_since, flagged.event_id)
    event_ok = flagged.event_id is not None and flagged.event_id in {str(e.id) for e in events}

    # The next window comes back with reference answers; the monitor retrains on it right away.
    labeled = pd.concat([rest[:200], shifted_labeled]).sample(frac=1, random_state=2)
    start = DAY + timedelta(hours=len(results))
    serve(ws, labeled, start, with_references=True)
    retrain_config = config.model_copy(update={"sft": config.sft.model_copy(update={"epochs": args.retrain_epochs})})
    t0 = time.perf_counter()
    window = WindowSource(since=start, until=start + timedelta(hours=1))
    loop = monitor(
        model_name=MODEL, window=window, retrain_on_drift=True, pipeline_config=retrain_config, retrain_settings="given"
    )  # the champion's settings but --retrain-epochs: the given config, not the recorded one
    t_loop = time.perf_counter() - t0
    retrained = loop.retrain
    new_dir = retrained.pipeline.model.uri if retrained else find_champion(tracking, MODEL).model_dir
    test = reference["test"]
    new_name = f"retrained v{retrained.new_version if retrained else '-'}"
    table = {
        f"old champion v{old.version}": (scores(old.model_dir, shifted_test), scores(old.model_dir, test)),
        new_name: (scores(new_dir, shifted_test), scores(new_dir, test)),
    }
    _print(false_alarms, flagged.report, event_ok, loop, labeled, t_loop, table, len(shifted_test), len(test))
    median = sorted(check_times)[len(check_times) // 2]
    print(f"monitor run per window: median {median:.1f} s; whole bench {time.perf_counter() - t_start:.0f} s")
    check(retrained, *(v[0] for v in table.values()))


def _print(false_alarms, report, event_ok, loop, labeled, t_loop, table, n_shifted, n_test) -> None:
    print("\n## Closed loop (generation)")
    print(f"false alarms on 10 reference-like windows of {WINDOW} prompts: {false_alarms}/10")
    print(
        f"30% shifted window: {report.status} ({len(report.fired)}/{len(report.signals)} signals: "
        f"{', '.join(s.name for s in report.fired)}), event on the Prefect server: {'yes' if event_ok else 'NO'}"
    )
    print(f"window with references (70% shifted, {len(labeled)} rows): {loop.report.status} "
          f"({'; '.join(loop.report.reasons)}); monitoring + retraining took {t_loop:.0f} s")  # fmt: skip
    retrained = loop.retrain
    if retrained:
        print(
            f"retrained v{retrained.champion_before} -> v{retrained.new_version} (added pairs {retrained.data.added}): "
            f"gate {retrained.gate}; champion is now v{retrained.champion_after} "
            f"({'promoted' if retrained.promoted else 'NOT promoted'})"
        )
    else:
        print(f"no retraining: {loop.retrain_skipped or loop.report.status}")
    print("\n| model | shifted chrF | shifted exact match | reference test chrF | reference test exact match |")
    print("|---|---:|---:|---:|---:|")
    for name, ((sc, se), (bc, be)) in table.items():
        print(f"| {name} | {sc:.2f} | {se:.4f} | {bc:.2f} | {be:.4f} |")
    print(f"shifted: {n_shifted} prompts in no window; reference test: {n_test} prompts")


def check(retrained, old_shift: tuple[float, float], new_shift: tuple[float, float]) -> None:
    """The loop must retrain, promote through the gate, and the new champion must beat the old on shifted prompts."""
    if retrained is None or not retrained.promoted or new_shift[0] <= old_shift[0]:
        print(f"check FAILED: retrained={retrained is not None}, promoted={bool(retrained and retrained.promoted)}, "
              f"shifted chrF {old_shift[0]:.2f} -> {new_shift[0]:.2f}")  # fmt: skip
        sys.exit(1)
    print(f"check passed: promoted; shifted chrF {old_shift[0]:.2f} -> {new_shift[0]:.2f}")


if __name__ == "__main__":
    main()
