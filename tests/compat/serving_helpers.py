"""Shared helpers for the serving test files (not a test module).

- a model zoo: small scikit-learn models trained on seeded random data, exported with
  skl2onnx and logged + registered with the real ``mlflow.onnx.log_model``;
- references: every expected value comes from Python ``onnxruntime`` run on the very same
  float32 inputs, and every MLflow response shape from ``mlflow.pyfunc.scoring_server``
  run in-process on the very same request body;
- ``slipway server`` with the ONNX Runtime library, and ``slipway serve``, on conftest's launcher;
- request builders (MLflow JSON formats, CSV, V2 JSON, tritonclient, V1) and comparators.

Contract: /work/notes/serving-surface.md.
"""

import glob
import io
import json
import logging
import math
import os
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import requests
from conftest import ServerProcess, SlipwayServer, free_port, slipway_bin, unique

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
logging.getLogger("mlflow").setLevel(logging.ERROR)
logging.getLogger("skl2onnx").setLevel(logging.ERROR)

TOL = 1e-5
DEPLOYMENTS = "/api/v1/deployments"
ONNX_PIP = ["onnx", "onnxruntime"]
N_FEATURES = 4
N_ROWS = 7  # rows per parity request
STANDARD_FILES = {
    "MLmodel",
    "model.onnx",
    "conda.yaml",
    "python_env.yaml",
    "requirements.txt",
    "input_example.json",
    "serving_input_example.json",
    "registered_model_meta",
}


# --------------------------------------------------------------------------------------
# ONNX Runtime library (passed explicitly so no test depends on discovery)
# --------------------------------------------------------------------------------------


def onnxruntime_lib() -> str:
    import onnxruntime

    libs = sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))
    assert libs, "the onnxruntime wheel ships no libonnxruntime.so*"
    return libs[-1]


# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------


class ServingServer(SlipwayServer):
    """`slipway server` given the wheel's ONNX Runtime library, so no test depends on discovery."""

    def command(self):
        return super().command() + ["--onnxruntime-lib", onnxruntime_lib()]


def serve_argv(model_uri, tracking_uri, port, extra_args=()):
    """`slipway serve MODEL_URI --tracking-uri URL --port P [flags]`."""
    return [
        slipway_bin(),
        "serve",
        model_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--tracking-uri",
        tracking_uri,
        "--onnxruntime-lib",
        onnxruntime_lib(),
        *extra_args,
    ]


class StandaloneServe(ServerProcess):
    """`slipway serve` of one model from a tracking server; ready once /ping answers."""

    ready_path = "/ping"
    startup_timeout = 60

    def __init__(self, model_uri, tracking_uri, log_dir, extra_args=(), name="serve"):
        self.name = name
        super().__init__(log_dir, extra_args)
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri

    def command(self):
        return serve_argv(self.model_uri, self.tracking_uri, self.port, self.extra_args)


def run_serve_to_exit(model_uri, tracking_uri, timeout=90, extra_args=()):
    """Run `slipway serve` expecting it to exit by itself; returns CompletedProcess."""
    argv = serve_argv(model_uri, tracking_uri, free_port(), extra_args)
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{argv} did not exit within {timeout}s (stderr: {e.stderr!r})")


# --------------------------------------------------------------------------------------
# Model zoo
# --------------------------------------------------------------------------------------


@dataclass
class ZooModel:
    key: str
    onx: object  # onnx.ModelProto
    X: object  # np.ndarray float32 [N_ROWS, F] or pd.DataFrame (column inputs)
    signature_kind: str  # "tensor" | "columns"
    columns: list  # request column names (dataframe formats, CSV)
    train_input: object  # what infer_signature / input_example saw
    train_output: object
    classifier: bool
    external_data: bool = False
    name: str = ""  # registered model name (set by register)
    local_dir: Path = None  # downloaded model version 1
    extra: dict = field(default_factory=dict)

    @property
    def multi_input(self):
        return isinstance(self.X, pd.DataFrame) and self.key == "coltrans"


def _rng(seed):
    return np.random.default_rng(seed)


def _float_data(seed, n, f=N_FEATURES):
    return _rng(seed).normal(size=(n, f)).astype(np.float32)


def _to_onnx(model, X, zipmap=True):
    from skl2onnx import to_onnx

    options = None if zipmap else {id(model): {"zipmap": False}}
    return to_onnx(model, X[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})


def _raw_initializers(onx):
    """Initializers as raw_data (skl2onnx writes float_data, which onnx never externalizes)."""
    from onnx import numpy_helper

    inits = [numpy_helper.from_array(numpy_helper.to_array(t), t.name) for t in onx.graph.initializer]
    del onx.graph.initializer[:]
    onx.graph.initializer.extend(inits)
    return onx


def build_zoo(only=None):
    """Train every zoo model once (fixed seeds) and export it; {key: ZooModel}."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    Xtr = _float_data(1, 240)
    Xte = _float_data(2, N_ROWS)
    y2 = (Xtr[:, 0] + 0.5 * Xtr[:, 1] - 0.2 * Xtr[:, 2] > 0).astype(np.int64)
    y3 = np.digitize(Xtr[:, 0] + Xtr[:, 3], [-0.5, 0.5]).astype(np.int64)
    yreg = (2.0 * Xtr[:, 0] - 1.5 * Xtr[:, 1] + 0.25 * Xtr[:, 3] + 0.1).astype(np.float32)
    names = np.array(["cat", "dog", "eel"])
    ystr = names[y3]
    cols = [str(i) for i in range(N_FEATURES)]
    named_cols = ["f0", "f1", "f2", "f3"]
    zoo = {}

    def want(k):
        return only is None or k in only

    def tensor(key, model, y, zipmap=True, classifier=True, external=False):
        model.fit(Xtr, y)
        onx = _to_onnx(model, Xtr, zipmap=zipmap)
        if external:
            onx = _raw_initializers(onx)
        zoo[key] = ZooModel(
            key=key,
            onx=onx,
            X=Xte.copy(),
            signature_kind="tensor",
            columns=cols,
            train_input=Xtr,
            train_output=model.predict(Xtr),
            classifier=classifier,
            external_data=external,
        )

    if want("logreg"):
        tensor("logreg", LogisticRegression(), y2)
    if want("logreg_nozipmap"):
        tensor("logreg_nozipmap", LogisticRegression(), y3, zipmap=False)
    if want("logreg_strlabels"):
        tensor("logreg_strlabels", LogisticRegression(), ystr)
    if want("random_forest"):
        tensor("random_forest", RandomForestClassifier(n_estimators=12, max_depth=5, random_state=0), y3)
    if want("gradient_boosting"):
        tensor("gradient_boosting", GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0), y3)
    if want("linear_regression"):
        tensor("linear_regression", LinearRegression(), yreg, classifier=False)
    if want("mlp"):
        tensor("mlp", MLPClassifier(hidden_layer_sizes=(12,), max_iter=300, random_state=0), y2)
    if want("external_data"):
        # 4x256 + 256x256 float32 weights (> onnx's 1 KiB external-data threshold)
        tensor(
            "external_data",
            MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=20, random_state=0),
            y3,
            external=True,
        )
    if want("rf_regressor"):
        # column signature (DataFrame with named columns) packed into the single input X
        m = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0).fit(Xtr, yreg)
        zoo["rf_regressor"] = ZooModel(
            key="rf_regressor",
            onx=_to_onnx(m, Xtr),
            X=Xte.copy(),
            signature_kind="columns",
            columns=named_cols,
            train_input=pd.DataFrame(Xtr, columns=named_cols),
            train_output=m.predict(Xtr),
            classifier=False,
        )
    if want("pipeline"):
        m = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())]).fit(Xtr, y2)
        zoo["pipeline"] = ZooModel(
            key="pipeline",
            onx=_to_onnx(m, Xtr),
            X=Xte.copy(),
            signature_kind="columns",
            columns=named_cols,
            train_input=pd.DataFrame(Xtr, columns=named_cols),
            train_output=m.predict(Xtr),
            classifier=True,
        )
    if want("coltrans"):
        from skl2onnx import to_onnx

        def frame(seed, n):
            r = _rng(seed)
            return pd.DataFrame(
                {
                    "num0": r.normal(size=n).astype(np.float32),
                    "num1": r.normal(size=n).astype(np.float32),
                    "color": pd.Series(r.choice(["red", "green", "blue"], size=n), dtype=object),
                }
            )

        dtr, dte = frame(3, 240), frame(4, N_ROWS)
        yc = ((dtr.num0 + 1.2 * (dtr.color == "red") - 0.4 * dtr.num1) > 0.3).astype(np.int64).to_numpy()
        m = Pipeline(
            [
                (
                    "ct",
                    ColumnTransformer(
                        [
                            ("num", StandardScaler(), ["num0", "num1"]),
                            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                        ]
                    ),
                ),
                ("lr", LogisticRegression()),
            ]
        ).fit(dtr, yc)
        onx = to_onnx(m, dtr[:1], target_opset={"": 17, "ai.onnx.ml": 3})
        zoo["coltrans"] = ZooModel(
            key="coltrans",
            onx=onx,
            X=dte,
            signature_kind="columns",
            columns=["num0", "num1", "color"],
            train_input=dtr,
            train_output=m.predict(dtr),
            classifier=True,
        )
    return zoo


ZOO_KEYS = [
    "logreg",
    "logreg_nozipmap",
    "logreg_strlabels",
    "random_forest",
    "gradient_boosting",
    "linear_regression",
    "rf_regressor",
    "pipeline",
    "coltrans",
    "mlp",
    "external_data",
]


def log_onnx(onx, registered_model_name, train_input, train_output):
    """mlflow.onnx.log_model with a signature and an input example; returns ModelInfo."""
    import mlflow.onnx
    from mlflow.models import infer_signature

    import onnx

    example = train_input[:2] if not isinstance(train_input, pd.DataFrame) else train_input.iloc[:2]
    # onnx.save_model(save_as_external_data=True) moves tensors out of the proto it is
    # given: log a copy so the zoo's ModelProto stays whole
    onx = onnx.ModelProto.FromString(onx.SerializeToString())
    return mlflow.onnx.log_model(
        onx,
        name="model",
        registered_model_name=registered_model_name,
        signature=infer_signature(train_input, train_output),
        input_example=example,
        pip_requirements=ONNX_PIP,
    )


def register_zoo(zoo, server, download_root, prefix="zoo"):
    """Log + register every zoo model against `server`, alias champion -> v1, download v1."""
    server.use()
    client = mlflow.MlflowClient(tracking_uri=server.url)
    eid = client.create_experiment(unique(f"{prefix}-exp"))
    mlflow.set_experiment(experiment_id=eid)
    for key, zm in zoo.items():
        zm.name = unique(f"{prefix}-{key}")
        with mlflow.start_run(run_name=key):
            info = log_onnx(zm.onx, zm.name, zm.train_input, zm.train_output)
        assert str(info.registered_model_version) == "1", info.registered_model_version
        client.set_registered_model_alias(zm.name, "champion", "1")
        dst = Path(download_root) / key
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        zm.local_dir = Path(mlflow.artifacts.download_artifacts(f"models:/{zm.name}/1", dst_path=str(dst)))
        files = {p.name for p in zm.local_dir.iterdir()}
        extra = files - STANDARD_FILES
        if zm.external_data:
            assert extra, f"{key}: mlflow.onnx wrote no external data file: {sorted(files)}"
    return client


# Versioned models (hot swap, canary, shadow)

def versioned_models(n_versions=3, seed=11):
    """LinearRegression models whose predictions differ per version (k = 1, 2, 3)."""
    from sklearn.linear_model import LinearRegression

    X = _float_data(seed, 120)
    out = []
    for k in range(1, n_versions + 1):
        y = (k * (X[:, 0] + 0.5 * X[:, 1]) + 10.0 * k).astype(np.float32)
        m = LinearRegression().fit(X, y)
        out.append((_to_onnx(m, X), X, m.predict(X)))
    return out


def register_versions(server, name, models, aliases=None):
    server.use()
    client = mlflow.MlflowClient(tracking_uri=server.url)
    eid = client.create_experiment(unique("hotswap-exp"))
    mlflow.set_experiment(experiment_id=eid)
    for i, (onx, X, y) in enumerate(models, start=1):
        with mlflow.start_run():
            info = log_onnx(onx, name, X, y)
        assert str(info.registered_model_version) == str(i)
    for alias, version in (aliases or {"champion": "1"}).items():
        client.set_registered_model_alias(name, alias, version)
    return client


def expected_per_version(models, X):
    """onnxruntime's prediction of each version on X: {"1": [[v], ...], ...}."""
    import onnxruntime

    exp = {}
    for i, (onx, _, _) in enumerate(models, start=1):
        s = onnxruntime.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
        exp[str(i)] = s.run(None, {"X": X})[0]
    # the versions are distinguishable on every row
    for a in exp:
        for b in exp:
            if a != b:
                assert np.all(np.abs(exp[a] - exp[b]) > 1.0)
    return exp



# --------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------


def ort_session(zm_or_path):
    import onnxruntime

    if isinstance(zm_or_path, ZooModel):
        if zm_or_path.local_dir is not None:
            path = str(zm_or_path.local_dir / "model.onnx")
            return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return onnxruntime.InferenceSession(zm_or_path.onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return onnxruntime.InferenceSession(str(zm_or_path), providers=["CPUExecutionProvider"])


def ort_feeds(zm, X=None):
    """The float32 (and string) feeds onnxruntime gets for the same rows the server gets."""
    X = zm.X if X is None else X
    if isinstance(X, pd.DataFrame):
        feeds = {}
        for c in X.columns:
            v = X[c].to_numpy()
            if v.dtype.kind in "fc":
                feeds[c] = v.astype(np.float32).reshape(-1, 1)
            else:
                feeds[c] = np.asarray(v, dtype=object).reshape(-1, 1)
        return feeds
    return {"X": np.asarray(X, dtype=np.float32)}


class OrtRef:
    """The onnxruntime outputs of one model on one input, in every shape the protocols use."""

    def __init__(self, zm, X=None, sess=None):
        sess = sess or ort_session(zm)
        self.output_names = [o.name for o in sess.get_outputs()]
        outs = sess.run(None, ort_feeds(zm, X))
        self.raw = dict(zip(self.output_names, outs))
        self.n = len(outs[0])

    # ---- helpers
    def is_zipmap(self, name):
        return isinstance(self.raw[name], list)

    def classes(self, name):
        assert self.is_zipmap(name)
        return list(self.raw[name][0].keys())

    def dense(self, name):
        """The output as an ndarray; ZipMap as float32 [n, C] in class order."""
        v = self.raw[name]
        if isinstance(v, list):
            cls = self.classes(name)
            return np.array([[row[c] for c in cls] for row in v], dtype=np.float32)
        return v

    def first_output(self):
        return self.output_names[0]

    # ---- JSON shapes
    @staticmethod
    def _scalar(x):
        if isinstance(x, (np.generic,)):
            x = x.item()
        if isinstance(x, bytes):
            x = x.decode()
        return x

    def _row(self, name, i):
        v = self.raw[name]
        if isinstance(v, list):  # ZipMap: class keys become JSON strings
            return {str(self._scalar(k)): float(p) for k, p in v[i].items()}
        row = v[i]
        if np.ndim(row) == 0:
            return self._scalar(row)
        flat = np.asarray(row).reshape(-1)
        if flat.size == 1:
            return self._scalar(flat[0])
        return [self._scalar(x) for x in flat]

    def records(self):
        """MLflow response for DataFrame-like input: one record per row."""
        return [{n: self._row(n, i) for n in self.output_names} for i in range(self.n)]

    def tensors(self):
        """MLflow response for tensor input: {output name: values}."""
        out = {}
        for n in self.output_names:
            v = self.raw[n]
            if isinstance(v, list):
                out[n] = [{str(self._scalar(k)): float(p) for k, p in row.items()} for row in v]
            else:
                out[n] = _jsonable(v)
        return out

    def v1_predictions(self):
        name = self.first_output()
        return [self._row(name, i) for i in range(self.n)]


def _jsonable(a):
    a = np.asarray(a)
    if a.dtype == object:
        return [_jsonable(x) if isinstance(x, np.ndarray) else OrtRef._scalar(x) for x in a.tolist()]
    return a.tolist()


def mlflow_reference(zm, body, content_type="application/json"):
    """What `mlflow models serve` answers for this body: (status, parsed JSON or text).

    Runs mlflow.pyfunc.scoring_server.invocations in-process on the pyfunc model loaded
    from the downloaded model version, i.e. pyfunc predict + predictions_to_json.
    """
    from mlflow.pyfunc import scoring_server

    pm = zm.extra.get("pyfunc")
    if pm is None:
        pm = mlflow.pyfunc.load_model(str(zm.local_dir))
        zm.extra["pyfunc"] = pm
    data = body if isinstance(body, str) else json.dumps(body)
    try:
        r = scoring_server.invocations(data, content_type, pm, pm.metadata.get_input_schema())
    except Exception as e:  # mlflow raises MlflowException for bad input / failed predict
        return 400, str(e)
    if r.status != 200:
        return r.status, r.response
    return 200, json.loads(r.response)


# --------------------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------------------


def _py(v):
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def rows_of(zm, X=None):
    X = zm.X if X is None else X
    if isinstance(X, pd.DataFrame):
        return [[_py(v) for v in r] for r in X.itertuples(index=False)]
    return [[float(v) for v in r] for r in np.asarray(X)]


def mlflow_body(zm, fmt, X=None):
    """(body, content type) for one MLflow format on the model's rows."""
    rows = rows_of(zm, X)
    cols = zm.columns
    if fmt == "dataframe_split":
        return {"dataframe_split": {"columns": cols, "data": rows}}, "application/json"
    if fmt == "dataframe_records":
        return {"dataframe_records": [dict(zip(cols, r)) for r in rows]}, "application/json"
    if fmt == "instances":
        if zm.signature_kind == "columns":
            return {"instances": [dict(zip(cols, r)) for r in rows]}, "application/json"
        return {"instances": rows}, "application/json"
    if fmt == "inputs":
        if zm.signature_kind == "columns":
            return {"inputs": {c: [r[i] for r in rows] for i, c in enumerate(cols)}}, "application/json"
        return {"inputs": rows}, "application/json"
    if fmt == "csv":
        buf = io.StringIO()
        buf.write(",".join(cols) + "\n")
        for r in rows:
            buf.write(",".join(repr(v) if isinstance(v, float) else str(v) for v in r) + "\n")
        return buf.getvalue(), "text/csv"
    raise ValueError(fmt)


MLFLOW_FORMATS = ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"]


def expected_mlflow(zm, fmt, ref: OrtRef):
    """The MLflow response the server must give, and where its shape comes from.

    The shape is mlflow's own (scoring_server in-process on the same body) whenever
    mlflow can answer; where mlflow itself fails on this model/format (CSV with a tensor
    signature, multi-input column models, width>1 outputs under a column signature) the
    contract's shape applies: tensors under a tensor signature, records otherwise. Values
    are onnxruntime's.
    """
    body, ctype = mlflow_body(zm, fmt)
    status, ml = mlflow_reference(zm, body, ctype)
    if status == 200:
        preds = ml["predictions"]
        form = "records" if isinstance(preds, list) else "tensors"
        want = {"predictions": ref.records() if form == "records" else ref.tensors()}
        # self-check: our onnxruntime-built expectation has mlflow's keys and nesting
        assert_json_close(ml, want, path=f"mlflow-vs-ort[{zm.key}/{fmt}]")
        return want, "mlflow"
    # Slipway's rule where mlflow has none: a tensor signature answers one entry per output,
    # anything else one record per row (what mlflow does wherever it can answer).
    if zm.signature_kind == "tensor":
        return {"predictions": ref.tensors()}, "contract"
    return {"predictions": ref.records()}, "contract"


# --------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------


def assert_json_close(got, want, tol=TOL, path="$"):
    """Same keys and nesting; ints/bools/strings exact; floats within tol."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{path}: expected object, got {type(got).__name__}: {got!r:.200}"
        assert set(got) == set(want), f"{path}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            assert_json_close(got[k], want[k], tol, f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list), f"{path}: expected list, got {type(got).__name__}: {got!r:.200}"
        assert len(got) == len(want), f"{path}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_json_close(g, w, tol, f"{path}[{i}]")
    elif isinstance(want, bool) or isinstance(want, str) or want is None:
        assert got == want and type(got) is type(want), f"{path}: {got!r} != {want!r}"
    elif isinstance(want, int):
        assert isinstance(got, int) and not isinstance(got, bool), f"{path}: label {got!r} is not an int ({want!r})"
        assert got == want, f"{path}: label {got!r} != {want!r}"
    elif isinstance(want, float):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{path}: {got!r} is not a number"
        assert math.isfinite(got) and abs(got - want) <= tol, f"{path}: {got!r} vs {want!r} (tol {tol})"
    else:
        raise TypeError(f"{path}: unexpected expected value {want!r}")


def assert_array_close(got, want, name, tol=TOL):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), atol=tol, rtol=0, err_msg=name)
    else:
        g = [x.decode() if isinstance(x, bytes) else x for x in got.reshape(-1).tolist()]
        w = [x.decode() if isinstance(x, bytes) else x for x in want.reshape(-1).tolist()]
        assert g == w, f"{name}: {g} != {w}"


# --------------------------------------------------------------------------------------
# V2 / V1 request builders and checks
# --------------------------------------------------------------------------------------

V2_DTYPE = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(object): "BYTES"}


def v2_inputs_json(zm, X=None):
    feeds = ort_feeds(zm, X)
    out = []
    for name, arr in feeds.items():
        dt = V2_DTYPE[arr.dtype]
        data = [str(x) for x in arr.reshape(-1)] if dt == "BYTES" else [float(x) for x in arr.reshape(-1)]
        out.append({"name": name, "shape": list(arr.shape), "datatype": dt, "data": data})
    return out


def triton_inputs(zm, binary=True, X=None):
    import tritonclient.http as httpclient

    res = []
    for name, arr in ort_feeds(zm, X).items():
        dt = V2_DTYPE[arr.dtype]
        inp = httpclient.InferInput(name, list(arr.shape), dt)
        inp.set_data_from_numpy(arr, binary_data=binary)
        res.append(inp)
    return res


def expected_v2_outputs(ref: OrtRef):
    """{name: (datatype, ndarray, classes or None)} per the contract (ZipMap -> FP32 [n, C])."""
    out = {}
    for name in ref.output_names:
        v = ref.raw[name]
        if ref.is_zipmap(name):
            out[name] = ("FP32", ref.dense(name), [str(ref._scalar(c)) for c in ref.classes(name)])
        else:
            a = np.asarray(v)
            dt = {"f": "FP32", "i": "INT64"}.get(a.dtype.kind, "BYTES")
            if a.dtype.kind == "f" and a.dtype != np.float32:
                dt = "FP64"
            out[name] = (dt, a, None)
    return out


def check_v2_json_response(body, ref: OrtRef, model_name=None):
    want = expected_v2_outputs(ref)
    assert isinstance(body.get("outputs"), list), body
    got = {o["name"]: o for o in body["outputs"]}
    assert set(got) == set(want), f"V2 outputs {sorted(got)} != {sorted(want)}"
    if model_name is not None:
        assert body.get("model_name") == model_name, body.get("model_name")
    for name, (dt, arr, classes) in want.items():
        o = got[name]
        assert o["datatype"] == dt, (name, o["datatype"], dt)
        assert list(o["shape"]) == list(arr.shape), (name, o["shape"], arr.shape)
        data = np.asarray(o["data"], dtype=object if dt == "BYTES" else None).reshape(arr.shape)
        assert_array_close(data, arr, f"v2 {name}")
        if classes is not None:
            got_cls = (o.get("parameters") or {}).get("classes")
            assert got_cls is not None, f"ZipMap output {name} lacks parameters.classes: {o}"
            assert [str(c) for c in got_cls] == classes, (got_cls, classes)


def check_triton_result(result, ref: OrtRef):
    want = expected_v2_outputs(ref)
    resp = result.get_response()
    got_names = {o["name"] for o in resp["outputs"]}
    assert got_names == set(want), f"V2 outputs {sorted(got_names)} != {sorted(want)}"
    for name, (dt, arr, classes) in want.items():
        o = result.get_output(name)
        assert o["datatype"] == dt, (name, o["datatype"], dt)
        got = result.as_numpy(name)
        assert got is not None, f"no data for output {name}: {o}"
        assert_array_close(got, arr, f"triton {name}")
        if classes is not None:
            got_cls = (o.get("parameters") or {}).get("classes")
            assert got_cls is not None, f"ZipMap output {name} lacks parameters.classes: {o}"
            assert [str(c) for c in got_cls] == classes, (got_cls, classes)


def v1_instances(zm, X=None):
    rows = rows_of(zm, X)
    if zm.multi_input:
        return [dict(zip(zm.columns, r)) for r in rows]
    return rows


# --------------------------------------------------------------------------------------
# Metrics, deployments, misc
# --------------------------------------------------------------------------------------


def parse_metrics(text):
    """[(name, {label: value}, float value)] from Prometheus text 0.0.4."""
    import re

    out = []
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        assert m, f"unparseable metrics line: {line!r}"
        labels = dict(label_re.findall(m.group(3) or ""))
        v = m.group(4)
        out.append((m.group(1), labels, float("inf") if v == "+Inf" else float(v)))
    return out


def metric_values(text, name, **labels):
    return [v for n, l, v in parse_metrics(text) if n == name and all(l.get(k) == str(x) for k, x in labels.items())]


def metric_sum(text, name, **labels):
    return sum(metric_values(text, name, **labels))


def get_metrics(url):
    r = requests.get(url + "/metrics", timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.text


def create_deployment(url, spec, expect=200):
    r = requests.post(url + DEPLOYMENTS, json=spec, timeout=120)
    assert r.status_code == expect, (spec, r.status_code, r.text[:1000])
    return r.json()


def wait_deployment_ready(url, name, timeout=60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/serving/{name}/ping", timeout=10)
        last = (r.status_code, r.text[:300])
        if r.status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"deployment {name} not ready within {timeout}s: {last}")
