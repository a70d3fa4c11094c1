"""Trains a logistic regression, exports it to ONNX and registers it: an ordinary MLflow
training script. Run by `slipway run`, it logs into its step's run (MLFLOW_RUN_ID)."""

import json
from pathlib import Path

import mlflow
import mlflow.onnx
import numpy as np
import pandas as pd
import yaml
from mlflow.models import infer_signature
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

params = yaml.safe_load(Path("params.yaml").read_text())
train = pd.read_csv("data/train.csv")
X = train.drop(columns=["label"]).to_numpy(dtype=np.float32)
y = train["label"].to_numpy()
if params["train"]["shuffle_labels"]:
    y = np.random.default_rng(0).permutation(y)

with mlflow.start_run():
    clf = LogisticRegression(C=params["train"]["C"], max_iter=500).fit(X, y)
    f1 = f1_score(y, clf.predict(X))
    mlflow.log_metric("train_f1", f1)
    # What the model saw: a monitor on its deployment compares live traffic with this.
    mlflow.log_artifact("data/train.csv", artifact_path="reference")
    onx = to_onnx(clf, X[:1], options={id(clf): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    Path("model.onnx").write_bytes(onx.SerializeToString())
    features = train.drop(columns=["label"]).astype(np.float32)
    mlflow.onnx.log_model(
        onx,
        name="model",
        registered_model_name=params["model"]["name"],
        signature=infer_signature(features, clf.predict(X)),
    )
Path("metrics.json").write_text(json.dumps({"train_f1": f1}))
print(f"train f1 {f1:.3f}")
