"""The platform every stage, flow and the service stand on: the workspace and its storage, MLflow tracking, how a
stage becomes a Prefect task, run context, errors, fingerprints, Prefect artifacts, registry names and the
prediction log. Imports nothing from `tasks/`, `flows/`, `serving/` or `cli/`."""
