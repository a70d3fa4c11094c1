"""Writes this batch of transactions, split into a training set and a holdout.

The features are four account signals; the label says whether the transaction was fraud.
`data.shift` moves the traffic: at 0 the old rules hold, at 1 the second signal has taken
over from the first, which a model trained on the old traffic cannot know.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

params = yaml.safe_load(Path("params.yaml").read_text())["data"]
rng = np.random.default_rng(params["seed"])
n, shift = params["rows"], params["shift"]
X = rng.normal(size=(n, 4)).astype(np.float32)
signal = (1 - shift) * X[:, 0] + shift * 1.5 * X[:, 1] - 0.5 * X[:, 2] + rng.normal(scale=0.4, size=n)
frame = pd.DataFrame(X, columns=["amount_z", "velocity_z", "age_z", "merchant_z"])
frame["label"] = (signal > 0.6).astype(int)

Path("data").mkdir(exist_ok=True)
cut = int(n * 0.75)
frame.iloc[:cut].to_csv("data/train.csv", index=False)
frame.iloc[cut:].to_csv("data/holdout.csv", index=False)
print(f"{n} rows, {frame['label'].mean():.1%} fraud, shift {shift}")
