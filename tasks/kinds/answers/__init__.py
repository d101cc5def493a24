"""Extractive question answering: read SQuAD/JSONL data, train and decode span models, score, export, monitor."""
