"""The MLflow model registry: register a version, read versions back, approve, promote, and the model card."""
