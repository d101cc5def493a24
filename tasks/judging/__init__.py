"""Judging a model: the scores every judge computes the same way, the quality bar, and the gate with its rules."""
