"""Drift monitoring of the champion, one concern per module (formerly the single `tasks/monitor.py`).

- `champion`: the registered version behind an alias, its weights and its prepared splits (`find_champion`,
  `load_reference`);
- `windows`: the current window from the prediction log or a file (`WindowSource`, `load_window`);
- `model_view`: the champion's view of a text: probabilities, pooled embeddings, words its tokenizer splits;
- `signals`: the Evidently reports that compute each drift signal, against which reference, and why;
- `reports`: what each HTML report says on top (model, version, window, reference);
- `report_layout`: how Evidently draws it: the header widget, distributions as shares when sizes differ;
- `policy`: `DriftPolicy`, the accuracy signal and the verdict;
- `config`: `MonitorConfig`, how the statistics are computed;
- `results`: `Signal` and `DriftReport`;
- `detect`: `detect_drift`, the whole computation without MLflow or Prefect;
- `check`: `check_drift`, the stage (MLflow run, Prefect artifacts) and the drift event's payload;
- `retrain_data`: `write_retrain_data`, the champion's splits plus newly labeled rows, for the `retrain` flow.

A generator champion (tag `zero2one.task=generation`) goes through the same check, policy, event and retrain flow
with modules of its own: `generation_signals` (prompt and answer descriptors, refusal phrases, prompt embeddings),
`generation_view` (its answers and hidden states), `generation_detect` (`detect_generation_drift`, the chrF signal)
and `generation_retrain_data` (its chats plus the window's new prompt/reference pairs).

The flows wire them: `flows/monitor.py` (check, event, optional retrain) and `flows/retrain.py`.
"""
