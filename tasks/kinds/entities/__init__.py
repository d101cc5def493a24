"""Named entities (token classification): reader, baselines, metrics, training, prediction, ONNX, monitoring."""
