"""Does the loop close? monitor -> drift event -> retrain -> gate -> promote, on the demo's shifted reviews.

1. Train and register a champion with the tiny preset (`configs/tiny.yaml`, the demo data).
2. Serve 10 windows of 500 reviews from the reference distribution that the champion never saw, and
   one of 500 with 30% shifted reviews, into the prediction log, as serving would (through the
   registered pyfunc); run the `monitor` flow on each. Count false alarms; the shifted window must be
   flagged and its `zero2one.drift.detected` event must reach the Prefect server.
3. Production moves on: the next window (1000 rows, 70% shifted) comes back labeled, and
   `monitor(retrain_on_drift=True)` (what `zero2one monitor --retrain-on-drift` runs) retrains: fine-tunes
   the champion on its data plus those rows; the pipeline's gate decides on promotion.
4. Old champion vs new model on 350 shifted reviews no window contained, and on the reference test split.
   Check: a promoted model must not be worse there on the gate's metric (macro-F1); the bench exits 1 if it is.

    python bench/closed_loop.py [--workspace DIR] [--set finetune.epochs=4 ...]

With --workspace pointing at a workspace that already has a champion, step 1 is skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, SCRATCH  # noqa: E402  (sets the environment before Prefect loads)
from core.registry_names import DEFAULT_MODEL_NAME as MODEL  # noqa: E402

DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)
WINDOW = 500


def serve(ws, texts, labels, start: datetime) -> None:
    """What serving does for each request batch: the champion's pyfunc predicts, the log records it."""
    import mlflow
    import pandas as pd

    from core.prediction_log import append_predictions, log_uri, rows_from_predictions

    version = mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion").version
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
    rows = rows_from_predictions(list(texts), model.predict(pd.DataFrame({"text": list(texts)})), MODEL, version)
    rows["timestamp"] = [start + timedelta(seconds=i) for i in range(len(rows))]
    rows["true_label"] = list(labels) if labels is not None else None
    append_predictions(log_uri(ws), rows)


def drift_events(since: datetime, wait_for: str | None, timeout: float = 60) -> list:
    """The drift events the Prefect server stored (it persists them asynchronously: wait for `wait_for`)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    from flows.monitor import DRIFT_EVENT

    query = EventFilter(occurred=EventOccurredFilter(since=since), event=EventNameFilter(name=[DRIFT_EVENT]))
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            events = client.read_events(query, limit=50).events
        if wait_for in {str(e.id) for e in events} or time.monotonic() > deadline:
            return events
        time.sleep(1)


def scores(model_dir: str, frame) -> tuple[float, float]:
    from models.classifier import TextClassifier
    from tasks.judging.scoring import score

    clf = TextClassifier(model_dir)
    labels = clf.labels
    pred = [labels.index(p) for p in clf.predict(frame["text"].tolist())]
    s = score([labels.index(t) for t in frame["true_label"]], pred, labels)
    return s.accuracy, s.macro_f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", default=str(SCRATCH / "closed-loop"))
    parser.add_argument("--set", action="append", default=[], help="pipeline config override (repeatable)")
    args = parser.parse_args()

    import pandas as pd

    from core.tracking import Tracking
    from flows.config import load_config
    from flows.monitor import monitor
    from flows.pipeline import pipeline
    from tasks.data.demo import write_demo_data
    from tasks.monitoring.champion import find_champion, load_reference
    from tasks.monitoring.windows import WindowSource

    config = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={args.workspace}", *args.set])
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
    old = find_champion(tracking, MODEL)
    reference = load_reference(old.data_uri)
    seen = set(pd.concat(reference.values())["text"])

    # Fresh reviews from the reference distribution (another seed of the same grammar) and the shifted ones.
    fresh_paths = write_demo_data(Path(ws.root, "bench-fresh"), n_labeled=6000, n_corpus=10, n_shifted=10, seed=1)
    fresh = pd.read_csv(fresh_paths.reviews).rename(columns={"review": "text", "sentiment": "true_label"})
    fresh = fresh[~fresh["text"].isin(seen)].sample(frac=1, random_state=0).reset_index(drop=True)
    shifted = pd.read_csv(Path(ws.root, "demo", "reviews_shifted.csv"))
    shifted = shifted.rename(columns={"review": "text", "sentiment": "true_label"}).sample(frac=1, random_state=0)
    shifted_drift, shifted_labeled, shifted_test = shifted[:150], shifted[150:850], shifted[850:1200]

    # 10 reference-like windows, then one with 30% shifted reviews; a monitor run on each.
    windows = [(f"reference-like {i + 1}", fresh[i * WINDOW : (i + 1) * WINDOW]) for i in range(10)]
    rest = fresh[10 * WINDOW :]
    mixed = pd.concat([rest[: WINDOW - len(shifted_drift)], shifted_drift]).sample(frac=1, random_state=1)
    windows.append(("30% shifted", mixed))
    rest = rest[WINDOW - len(shifted_drift) :]
    false_alarms, results, check_times = 0, {}, []
    events_since = datetime.now(timezone.utc)
    for hour, (name, frame) in enumerate(windows):
        start = DAY + timedelta(hours=hour)
        serve(ws, frame["text"], frame["true_label"], start)
        t0 = time.perf_counter()
        result = monitor(
            model_name=MODEL, window=WindowSource(since=start, until=start + timedelta(hours=1)), pipeline_config=config
        )
        check_times.append(time.perf_counter() - t0)
        report = result.report
        results[name] = result
        fired = ", ".join(s.name for s in report.fired) or "-"
        print(f"{name:18s} {report.status:9s} {len(report.fired)}/{len(report.signals)} signals ({fired})", flush=True)
        if name.startswith("reference") and report.status == "drift":
            false_alarms += 1
    flagged = results["30% shifted"]
    events = drift_events(events_since, flagged.event_id)
    event_ok = flagged.event_id is not None and flagged.event_id in {str(e.id) for e in events}

    # The next window comes back labeled; the monitor retrains on it right away.
    labeled = pd.concat([rest[:300], shifted_labeled]).sample(frac=1, random_state=2)
    start = DAY + timedelta(hours=len(windows))
    serve(ws, labeled["text"], labeled["true_label"], start)
    t0 = time.perf_counter()
    loop = monitor(
        model_name=MODEL,
        window=WindowSource(since=start, until=start + timedelta(hours=1)),
        retrain_on_drift=True,
        pipeline_config=config,
    )
    t_loop = time.perf_counter() - t0
    new = find_champion(tracking, MODEL)
    retrained = loop.retrain
    new_dir = retrained.pipeline.model.uri if retrained else new.model_dir

    old_shift, new_shift = scores(old.model_dir, shifted_test), scores(new_dir, shifted_test)
    old_base, new_base = scores(old.model_dir, reference["test"]), scores(new_dir, reference["test"])

    print("\n## Closed loop")
    print(f"false alarms on 10 reference-like windows of {WINDOW} rows: {false_alarms}/10")
    report = flagged.report
    print(
        f"30% shifted window: {report.status} ({len(report.fired)}/{len(report.signals)} signals), "
        f"event on the Prefect server: {'yes' if event_ok else 'NO'}"
    )
    print(f"labeled window (70% shifted, {len(labeled)} rows): {loop.report.status}; retraining took {t_loop:.0f} s")
    if retrained:
        print(
            f"retrained v{retrained.champion_before} -> v{retrained.new_version}: gate {retrained.gate}; "
            f"champion is now v{retrained.champion_after} ({'promoted' if retrained.promoted else 'NOT promoted'})"
        )
    else:
        print(f"no retraining: {loop.retrain_skipped or loop.report.status}")
    version = retrained.new_version if retrained else "-"
    print("\n| model | shifted test acc | shifted test macro-F1 | reference test acc | reference test macro-F1 |")
    print("|---|---:|---:|---:|---:|")
    for name, (sa, sf), (ba, bf) in (
        (f"old champion v{old.version}", old_shift, old_base),
        (f"retrained v{version}", new_shift, new_base),
    ):
        print(f"| {name} | {sa:.4f} | {sf:.4f} | {ba:.4f} | {bf:.4f} |")
    print(f"shifted test: {len(shifted_test)} reviews in no window; reference test: {len(reference['test'])} reviews")
    median = sorted(check_times)[len(check_times) // 2]
    print(f"monitor run per window: median {median:.1f} s; whole bench {time.perf_counter() - t_start:.0f} s")
    check(retrained, old_shift, new_shift)


def check(retrained, old_shift: tuple[float, float], new_shift: tuple[float, float]) -> None:
    """The loop must never promote a model worse on the drifted data by the gate's metric (macro-F1), whatever
    accuracy says: exit 1 if it did. Also shows the gate's own rule on the labeled window's held-out rows."""
    if retrained is None:
        return
    newest = {r.name: r for r in retrained.pipeline.verdict.rules}.get("newest")
    if newest is not None:
        result = "pass" if newest.passed else "FAIL"
        print(f"gate rule on the newest rows (the window's held-out): {result}: {newest.reason}")
    (old_acc, old_f1), (new_acc, new_f1) = old_shift, new_shift
    if retrained.promoted and new_f1 < old_f1:
        print(
            f"check FAILED: v{retrained.new_version} was promoted but its shifted-test macro-F1 (the gate's metric) "
            f"fell {old_f1:.4f} -> {new_f1:.4f} (accuracy {old_acc:.4f} -> {new_acc:.4f})"
        )
        sys.exit(1)
    verb = "promoted" if retrained.promoted else "refused"
    print(f"check passed: {verb}; shifted-test macro-F1 {old_f1:.4f} -> {new_f1:.4f}")


if __name__ == "__main__":
    main()
