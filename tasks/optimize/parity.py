"""The parity gate: an ONNX variant may serve only if it predicts what PyTorch predicts."""

from __future__ import annotations

import numpy as np

from tasks.judging.scoring import score
from tasks.optimize.config import OptimizeConfig
from tasks.results.classification import Parity


def check_parity(
    cfg: OptimizeConfig, reference: np.ndarray, candidate: np.ndarray, y_true: list[int], labels: list[str]
) -> Parity:
    """Agreement with PyTorch, metric drops and the largest logit difference; `passed` applies the gate."""
    ref_pred, cand_pred = reference.argmax(axis=1), candidate.argmax(axis=1)
    ref, cand = score(y_true, ref_pred.tolist(), labels), score(y_true, cand_pred.tolist(), labels)
    parity = {
        "agreement": float((ref_pred == cand_pred).mean()),
        "accuracy": cand.accuracy,
        "macro_f1": cand.macro_f1,
        "accuracy_drop": ref.accuracy - cand.accuracy,
        "macro_f1_drop": ref.macro_f1 - cand.macro_f1,
        "max_abs_logit_diff": float(np.abs(reference - candidate).max()),
    }
    problems = []
    if parity["agreement"] < cfg.min_agreement:
        problems.append(f"prediction agreement {parity['agreement']:.4f} < optimize.min_agreement={cfg.min_agreement}")
    for metric in ("accuracy", "macro_f1"):
        if parity[f"{metric}_drop"] > cfg.max_metric_drop + 1e-9:
            problems.append(
                f"test {metric} drops {parity[f'{metric}_drop']:.4f} > optimize.max_metric_drop={cfg.max_metric_drop}"
            )
    return Parity(**parity, passed=not problems, reason="; ".join(problems) or None)
