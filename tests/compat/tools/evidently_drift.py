"""Run Evidently 0.7.23's DataDriftPreset on two files and print what slipway drift --json says.

Runs under .venv-evidently/bin/python (scripts/evidently-env.sh), never the project's .venv:

    evidently_drift.py REFERENCE CURRENT [--per-column-method JSON] [--per-column-threshold JSON]
                       [--numerical A,B] [--categorical C,D]
    evidently_drift.py --jobs JOBS.json      # many comparisons in one interpreter

Prints one JSON object (a list of them for --jobs, each job being {"reference", "current",
"methods", "thresholds", "numerical", "categorical"}): per column its type, method, statistic
(the ValueDrift value of the new API), threshold and verdict, plus the drifted share and the
dataset verdict. The verdict is Evidently's own: the registered stattest called on the column
cleaned as Evidently cleans it.

Declared types go to Evidently as a DataDefinition. Given a numerical_columns list, Evidently
treats every column outside it as not numerical (an undeclared float column would go
untested), so the lists it gets are completed with Evidently's own inference for the columns
not declared, which is what `slipway drift --numerical/--categorical` does. A CSV column
declared categorical is read with dtype=str, its values as written ("001" stays "001").
"""

import argparse
import json
import sys

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.datasets import infer_column_type
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

# ValueDrift reports the stattest's display name; slipway reports Evidently's short name.
DISPLAY_TO_NAME = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Kullback-Leibler divergence": "kl_div",
    "Hellinger distance": "hellinger",
}


def read(path, categorical=()):
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={c: str for c in categorical} or None)


def definition(cur, numerical, categorical):
    """The DataDefinition for declared types, completed with Evidently's inference."""
    rest = [c for c in cur.columns if c not in numerical and c not in categorical]
    inferred = {c: infer_column_type(cur[c]) for c in rest}
    return DataDefinition(
        numerical_columns=list(numerical) + [c for c in rest if inferred[c] == ColumnType.Numerical],
        categorical_columns=list(categorical) + [c for c in rest if inferred[c] == ColumnType.Categorical],
    )


def clean(series):
    return series.replace([-np.inf, np.inf], np.nan).dropna()


def drift(reference, current, methods, thresholds, numerical=(), categorical=(), verdicts=True):
    ref, cur = read(reference, categorical), read(current, categorical)
    preset = DataDriftPreset(
        per_column_method=methods or None, per_column_threshold=thresholds or None
    )
    declared = definition(cur, numerical, categorical) if numerical or categorical else None
    ref_data = Dataset.from_pandas(ref, data_definition=declared)
    cur_data = Dataset.from_pandas(cur, data_definition=declared)
    snapshot = Report([preset]).run(current_data=cur_data, reference_data=ref_data)
    if not verdicts:
        return {"metrics": len(snapshot.dict()["metrics"])}

    numeric = set(cur_data.data_definition.get_numerical_columns())
    out = {"columns": []}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            out["share"] = metric["value"]["share"]
            out["count"] = metric["value"]["count"]
            out["dataset_drift"] = bool(metric["value"]["share"] >= config["drift_share"])
            continue
        if not config["type"].endswith("ValueDrift"):
            continue
        column = config["column"]
        # A default method is named by its display name, an override by the name given.
        method = DISPLAY_TO_NAME.get(config["method"], config["method"])
        assert method in DISPLAY_TO_NAME.values(), config["method"]
        kind = ColumnType.Numerical if column in numeric else ColumnType.Categorical
        r, c = clean(ref[column]), clean(cur[column])
        # Picked as Evidently picks it: the override if any, else its default for the column.
        stattest = get_stattest(r, c, kind, (methods or {}).get(column))
        assert stattest.name == method, (column, stattest.name, method)
        result = stattest(r, c, kind, config["threshold"])
        out["columns"].append(
            {
                "column": column,
                "type": "numeric" if kind == ColumnType.Numerical else "categorical",
                "method": method,
                "statistic": float(metric["value"]),
                "recomputed": float(result.drift_score),
                "threshold": float(config["threshold"]),
                "drifted": bool(result.drifted),
            }
        )
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference", nargs="?")
    ap.add_argument("current", nargs="?")
    ap.add_argument("--per-column-method", default="{}")
    ap.add_argument("--per-column-threshold", default="{}")
    ap.add_argument("--numerical", default="", help="comma-separated declared numerical columns")
    ap.add_argument("--categorical", default="", help="comma-separated declared categorical columns")
    ap.add_argument("--jobs", help="a JSON file with a list of comparisons")
    ap.add_argument("--no-verdicts", action="store_true", help="only the report (benchmarks)")
    args = ap.parse_args()
    if args.jobs:
        with open(args.jobs) as f:
            jobs = json.load(f)
        results = [
            drift(
                j["reference"],
                j["current"],
                j.get("methods"),
                j.get("thresholds"),
                j.get("numerical", ()),
                j.get("categorical", ()),
            )
            for j in jobs
        ]
        json.dump(results, sys.stdout)
        return
    result = drift(
        args.reference,
        args.current,
        json.loads(args.per_column_method),
        json.loads(args.per_column_threshold),
        [c for c in args.numerical.split(",") if c],
        [c for c in args.categorical.split(",") if c],
        verdicts=not args.no_verdicts,
    )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
