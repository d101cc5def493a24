"""The one exception type for mistakes a user can fix (bad data, bad config, missing model)."""


class PipelineInputError(ValueError):
    """Raised before any compute is spent; the message names the file, column, key or value.

    Prefect does not retry it: retrying cannot fix a typo in a CSV.
    """
