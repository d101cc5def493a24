"""Model kinds beyond the text classifier: each sub-package holds one kind's data, model, metrics and monitor parts."""
