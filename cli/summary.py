"""The final summary a person can act on: where the model is, how good it is, where to look, what was decided."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.common import EXIT_REFUSED, ui_command
from flows.pipeline import PipelineResult
from tasks.kinds.registry import kind


def print_summary(result: PipelineResult, console: Console | None = None) -> None:
    console = console or Console()
    reg, ev = result.registered, result.evaluation
    console.print(_table(kind(result.task).comparison_rows(ev), ev.test_size))
    verdict = "[green]passed[/]" if ev.passed else "[red]failed[/]: " + "; ".join(ev.reasons)
    console.print(f"Evaluation {verdict}")
    gate_reasons = escape("; ".join(result.verdict.reasons))
    gate = "[green]passed[/]" if result.verdict.passed else f"[red]failed[/]: {gate_reasons}"
    champion = result.verdict.champion_version
    console.print(f"Gate {gate}" + (f" (against champion v{champion})" if champion else ""))
    for r in (r for r in result.verdict.rules if r.state == "not judged"):  # passed, but compared nothing
        console.print(f"  {r.name}: not judged ({escape(r.value)})")
    if not result.verdict.passed and not result.baseline_promoted:
        if ship := ship_baseline_command(result):
            console.print(f"  ship the TF-IDF baseline (it beat v{reg.version} and passed the gate): {ship}")
        console.print(
            f"  promote anyway: zero2one promote --workspace {result.workspace} --model {reg.name} "
            f'--version {reg.version} --force --reason "..."'
        )
    console.print(f"Registered [bold]{reg.model_uri}[/] with aliases {', '.join(result.aliases)}")
    console.print(f"  weights:     {result.model.uri}")
    if recipe := getattr(result.model, "recipe", None):
        console.print(f"  recipe:      {recipe} (fine-tuning settings left unset came from it)")
    console.print(f"  data:        {result.data.uri} (fingerprint {result.data.fingerprint})")
    if result.reused_stages:
        console.print(f"  reused:      {', '.join(result.reused_stages)} (same inputs and code as an earlier run)")
    console.print(
        f'  load it:     mlflow.pyfunc.load_model("{reg.model_uri}")  (MLFLOW_TRACKING_URI={result.tracking_uri})'
    )
    which = f"{reg.name}@champion" if result.baseline_promoted else f"{reg.name}/{reg.version}"
    try_it = kind(result.task).try_it(result.workspace, which, result.sample_text)
    console.print("  try it:      " + escape(try_it))
    console.print(
        f"  look at it:  {ui_command(result.workspace)}   -> Prefect http://127.0.0.1:4200, MLflow http://127.0.0.1:5000"
    )


def _table(rows: list[dict], test_size: int) -> Table:
    """The model beside its kind's baselines on the held-out test split (`ModelKind.comparison_rows`)."""
    table = Table(title=f"Held-out test split ({test_size})")
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*(_cell(col, value) for col, value in row.items()))
    return table


def _cell(column: str, value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if column == "chrF" else f"{value:.4f}"
    return str(value)


def ship_baseline_command(result: PipelineResult) -> str | None:
    """`zero2one promote` for the TF-IDF baseline's version, where it beat the challenger and passed its own gate."""
    if result.baseline_reasons != [] or result.baseline_promoted or result.approval:  # approval: `zero2one approve`
        return None
    name, version = result.registered.name, result.verdict.baseline_version
    return f"zero2one promote --workspace {result.workspace} --model {name} --version {version}"


def print_outcome(result: PipelineResult, console: Console | None = None) -> None:
    """The decision, as prominent as it matters: promoted in green, refused in red with the gate's reasons.

    A refused first run whose TF-IDF baseline passed leads with shipping that baseline: the better move, one command.
    """
    from rich.panel import Panel

    v, reg = result.verdict, result.registered
    champion = f"v{v.champion_version}" if v.champion_version else "none"
    reasons = "\n".join(f"  - {escape(r)}" for r in v.reasons)
    if result.promoted:
        was = f"was {champion}" if v.champion_version else "the first"
        body, style, title = f"{reg.name} v{reg.version} is the champion ({was})", "green", "promoted"
    elif result.baseline_promoted:
        body = (
            f"{reg.name} v{reg.version} was refused by the gate; the TF-IDF baseline v{v.baseline_version} is the "
            f"first champion (gate.baseline_as_champion=true).\n{reasons}"
        )
        style, title = "yellow", "baseline promoted"
    elif result.approval in ("pending", "rejected"):
        waits = v.version if v.passed else v.baseline_version
        body = f"{reg.name} v{waits} was rejected by a person (zero2one.approval.reason on the version)"
        if result.approval == "pending":
            body = (
                f"{reg.name} v{waits} waits for approval (gate.approval=required); the champion is still {champion}:\n"
                f"  zero2one approve --workspace {result.workspace} --model {reg.name} --version {waits} "
                f'--reason "..."   (or reject)'
            )
        style, title = "yellow", f"approval {result.approval}"
    elif v.passed:
        body = f"{reg.name} v{reg.version} passed the gate; not promoted (gate.promote=false)"
        style, title = "yellow", "passed, not promoted"
    else:
        body = f"{reg.name} v{reg.version} was refused by the gate; the champion is still {champion}.\n"
        if ship := ship_baseline_command(result):
            body += (
                f"The TF-IDF baseline beat it and passed the gate as v{v.baseline_version}: ship it with\n"
                f"  {ship}\nWhy v{reg.version} was refused:\n"
            )
        body += reasons
        style, title = "red", f"refused (exit code {EXIT_REFUSED})"
    console = console or Console()
    console.print(Panel(body, title=title, title_align="left", border_style=f"bold {style}", style=style))
