"""`zero2one predict`, `promote` and `rollback`: use and move the registered versions of a model."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import fail
from cli.settings import ConfigOpt, ModelOpt, SetOpt, TrackingUriOpt, WorkspaceOpt, resolve
from core.registry_names import CHAMPION

GENERATION = "Generation (generators only)"
MaxNewTokensOpt = Annotated[
    int | None,
    typer.Option(min=1, metavar="N", help="Longest answer in tokens [default: 64].", rich_help_panel=GENERATION),
]
TemperatureOpt = Annotated[
    float | None,
    typer.Option(min=0.0, metavar="T", help="0 = greedy; above 0 samples [default: 0].", rich_help_panel=GENERATION),
]
TopPOpt = Annotated[
    float | None,
    typer.Option(min=0.0, max=1.0, metavar="P", help="Nucleus sampling mass [default: 1].", rich_help_panel=GENERATION),
]
SeedOpt = Annotated[
    int | None, typer.Option(metavar="N", help="Sampling seed [default: 0].", rich_help_panel=GENERATION)
]


def predict(
    texts: Annotated[
        list[str], typer.Argument(help="Texts to classify or tag, prompts, or questions (with --context).")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME@ALIAS",
            help=f"Registered model and alias or version: NAME@alias or NAME/3 [default: the config's "
            f"registry.model_name@{CHAMPION}]",
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context", metavar="TEXT", help="For a question answerer: the passage the questions (TEXTS) are about."
        ),
    ] = None,
    max_new_tokens: MaxNewTokensOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Classify texts, tag entities, answer prompts, or answer questions about --context, with a registered model
    (loaded the way any MLflow user would).

    A generator (task: generation) answers each prompt through its registered pyfunc; the generation options
    are its params. Put a line break in a prompt with $'...' in bash, e.g. $'Instruction.\\nReview: ...'.
    """
    cfg = resolve(config, set_, workspace, tracking_uri)
    import mlflow

    from core.tracking import Tracking

    Tracking.resolve(cfg.tracking, cfg.workspace.resolved()).activate()
    uri = f"models:/{model or cfg.registry.model_name + '@' + CHAMPION}"
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    except mlflow.exceptions.MlflowException as e:  # no such model, version or alias in this registry
        fail(f"{uri} in {cfg.workspace.root}: {e.message}")
    params = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}
    _answer(loaded, uri, texts, context, {k: v for k, v in params.items() if v is not None})


def _answer(loaded, uri: str, texts: list[str], context: str | None, params: dict) -> None:
    """Ask the loaded pyfunc in the input its kind takes, and print what it says."""
    import pandas as pd

    if context is not None:  # a question answerer: {question, context} rows (models/answers_pyfunc.py)
        rows = pd.DataFrame({"question": texts, "context": [context] * len(texts)})
        typer.echo(loaded.predict(rows).to_string(index=False))
        return
    if not _is_generator(loaded):
        if params:
            given = "/".join("--" + k.replace("_", "-") for k in params)
            fail(f"{given}: {uri} is a classifier; the generation options are for generators")
        typer.echo(loaded.predict(pd.DataFrame({"text": texts})).to_string(index=False))
        return
    answers = loaded.predict(pd.DataFrame({"prompt": texts}), params=params)["response"]
    for prompt, answer in zip(texts, answers, strict=True):
        typer.echo(f"> {prompt}\n{answer}\n")


def _is_generator(loaded) -> bool:
    """A registered generator takes a `prompt` column (tasks/kinds/generation/registry.py); a classifier takes
    `text`."""
    schema = loaded.metadata.get_input_schema()
    return schema is not None and "prompt" in schema.input_names()


def promote(
    version: Annotated[str, typer.Option(metavar="VERSION", help="Version number or alias (e.g. 3 or challenger).")],
    model: ModelOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Promote even if the version did not pass the gate.")] = False,
    reason: Annotated[
        str | None, typer.Option(metavar="TEXT", help="Why; required with --force, kept in the history.")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Make a version the champion; the current champion becomes `previous-champion`."""
    if force and not (reason or "").strip():
        fail("--force needs --reason TEXT: a forced promotion skips the gate, and the history must say why")
    cfg = resolve(config, set_, workspace, tracking_uri)
    from core.errors import PipelineInputError
    from flows.promote import promote_flow

    try:
        result = promote_flow(
            model=model or cfg.registry.model_name,
            version=version,
            force=force,
            reason=reason,
            workspace=cfg.workspace.root,
            tracking_uri=cfg.tracking.uri,
        )
    except PipelineInputError as e:
        fail(str(e))
    _print_move(result)


def rollback(
    model: ModelOpt = None,
    reason: Annotated[str | None, typer.Option(metavar="TEXT", help="Why, kept in the history.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Give `champion` back to the `previous-champion` (one step; the two aliases swap)."""
    cfg = resolve(config, set_, workspace, tracking_uri)
    from core.errors import PipelineInputError
    from flows.promote import rollback_flow

    try:
        result = rollback_flow(
            model=model or cfg.registry.model_name,
            reason=reason,
            workspace=cfg.workspace.root,
            tracking_uri=cfg.tracking.uri,
        )
    except PipelineInputError as e:
        fail(str(e))
    _print_move(result)


def _print_move(result) -> None:
    if not result.changed:
        typer.echo(f"{result.model}: {result.reason}; nothing changed")
        return
    typer.echo(
        f"{result.model}: champion {'v' + result.previous_version if result.previous_version else 'none'} -> "
        f"v{result.version} "
        f"({result.action} #{result.seq}{', forced' if result.forced else ''}: {result.reason})"
    )
