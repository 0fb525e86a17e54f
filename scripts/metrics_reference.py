#!/usr/bin/env python3
"""Writes models/testdata/sklearn_metrics.json: fixed prediction/label/user vectors and the
metrics scikit-learn computes for them, the independent reference of ctrflow's metric tests.

    python3 -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn==1.5.2 numpy
    /tmp/skl/bin/python scripts/metrics_reference.py > models/testdata/sklearn_metrics.json
"""
import json

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

rng = np.random.default_rng(20241123)
cases = []
for name, n, ties, noise in [("small", 12, False, 0.5), ("ties", 400, True, 0.2), ("large", 5000, False, 0.2)]:
    users = rng.integers(0, max(2, n // 20), size=n)
    labels = (rng.random(n) < 0.3).astype(int)
    preds = np.clip(0.3 + 0.25 * (labels - 0.3) + rng.normal(0, noise, size=n), 0.001, 0.999)
    if ties:
        preds = np.round(preds, 1)  # many exact ties
    preds = [float(p) for p in preds]
    groups = {}
    for u, y, p in zip(users, labels, preds):
        groups.setdefault(int(u), []).append((y, p))
    num = den = 0.0
    for rows in groups.values():
        ys = [y for y, _ in rows]
        if 0 < sum(ys) < len(ys):
            num += roc_auc_score(ys, [p for _, p in rows]) * len(rows)
            den += len(rows)
    cases.append({
        "name": name,
        "predictions": preds,
        "labels": [int(y) for y in labels],
        "users": [int(u) for u in users],
        "auc": roc_auc_score(labels, preds),
        "gauc": num / den,
        "logloss": log_loss(labels, preds),
        "calibration": float(np.mean(preds) / np.mean(labels)),
    })
print(json.dumps(cases))
