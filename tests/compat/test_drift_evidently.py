"""`slipway drift --json` against Evidently 0.7.23's DataDriftPreset on the same files.

Random datasets (numeric, integer, few-valued, binary, categorical, with nulls and infinities;
reference sizes on both sides of Evidently's N = 1000 switch, and current sizes past scipy's
exact-KS limit) are written as CSV and Parquet. Evidently runs once for all of them, in its own
environment (.venv-evidently, made by scripts/evidently-env.sh), through
tools/evidently_drift.py. Each case then compares, per column, the type, the method, the
statistic (relative 1e-6) and the verdict, and the dataset verdict. Nothing expected is written
down here: every expected value comes from Evidently.

Half the cases declare column types (`--numerical`/`--categorical` for Slipway, a DataDefinition
for Evidently): few-valued integers declared numerical, zero-padded string codes ("001", ...) and
wide integer codes declared categorical. The other half leave the same columns to inference.
"""

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT, assert_quiet_into_closed_pipe, slipway_bin

EVIDENTLY_PY = REPO_ROOT / ".venv-evidently" / "bin" / "python"
EVIDENTLY_TOOL = Path(__file__).parent / "tools" / "evidently_drift.py"

# Relative agreement asked of every statistic. p-values under 1e-15 sit at the resolution of
# Evidently's own `1 - norm.cdf(z)` in doubles, so they only need to agree absolutely there.
REL_TOL = 1e-6
ABS_TOL = 1e-15

# (reference rows, current rows): small N (exact KS, chi-square, Z), large N (Wasserstein,
# Jensen-Shannon), equal sizes (KS's square formula), and current > 10,000 (asymptotic KS, at
# n <= 140 and above).
SIZES = [(120, 90), (500, 500), (1000, 700), (1001, 1500), (4000, 2500), (800, 12000), (100, 10500)]
SEEDS = [1, 2, 3]
FORMATS = ["csv", "parquet"]

# Per-column overrides, checked on a subset of cases: every method and a custom threshold.
OVERRIDES = {
    "methods": {
        "num_normal": "psi",
        "num_nulls_inf": "kl_div",
        "num_int_wide": "hellinger",
        "num_few": "wasserstein",
        "cat_str": "hellinger",
        "cat_binary": "psi",
        "int_cat": "kl_div",
        "num_tiny": "jensenshannon",
        "num_binary": "ks",
        "code_int_cat": "psi",
    },
    "thresholds": {"num_normal": 0.02, "cat_str": 0.05, "num_binary": 0.2},
}


def dataset(rng, n, shift):
    """One dataset; `shift` (one number per column, 0 for none) moves the current one."""
    s = iter(shift)
    df = pd.DataFrame()
    df["num_normal"] = rng.normal(next(s), 1.0, n)
    x = rng.normal(10 + next(s), 3.0, n)
    x[rng.random(n) < 0.05] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    x[rng.random(n) < 0.01] = -np.inf
    df["num_nulls_inf"] = x
    df["num_int_wide"] = rng.integers(0, 40 + int(10 * next(s)), n)
    df["num_few"] = rng.choice([0.5, 1.5, 2.5, 3.5], n, p=probs(rng, 4, next(s)))
    df["num_binary"] = rng.choice([0.0, 1.0], n, p=probs(rng, 2, next(s)))
    cats = ["a", "b", "c", "d", "e"] + (["f"] if next(s) > 0.2 else [])
    df["cat_str"] = rng.choice(cats, n, p=probs(rng, len(cats), 0.0))
    df["cat_binary"] = rng.choice(["yes", "no"], n, p=probs(rng, 2, next(s)))
    df["int_cat"] = rng.integers(0, 4, n)
    c = rng.choice(["red", "green", "blue"], n, p=probs(rng, 3, next(s))).astype(object)
    c[rng.random(n) < 0.1] = None
    df["cat_nulls"] = c
    df["num_tiny"] = rng.uniform(0, 1e-3 * (1 + next(s)), n)
    return df


N_SHIFTS = 10

# The columns whose type is declared in the declared cases (and inferred in the others).
DECLARED = {
    "numerical": ["code_int_num", "few_int_num", "bin_int_num"],
    "categorical": ["zip_str_cat", "code_int_cat"],
}
ZIPS = [f"{i:03d}" for i in range(1, 16)]


def coded(rng, n, shift):
    """The columns typing gets wrong without a declaration, drawn from their own generator so
    that the other columns' values do not depend on them."""
    s = iter(shift)
    df = pd.DataFrame()
    # Integers with few values: inferred categorical, declared numerical (KS or Wasserstein
    # with 8 values; chi-square or Jensen-Shannon with 3; Z or Jensen-Shannon with 2).
    df["code_int_num"] = rng.choice(np.arange(8), n, p=probs(rng, 8, next(s)))
    df["few_int_num"] = rng.choice([1, 2, 3], n, p=probs(rng, 3, next(s)))
    df["bin_int_num"] = rng.choice([0, 1], n, p=probs(rng, 2, next(s)))
    # Zero-padded codes, some missing: pandas reads them as numbers unless told otherwise.
    z = rng.choice(ZIPS, n, p=probs(rng, len(ZIPS), next(s))).astype(object)
    z[rng.random(n) < 0.05] = None
    df["zip_str_cat"] = z
    # Wide integer codes: inferred numeric, declared categorical.
    df["code_int_cat"] = rng.choice(np.arange(100, 140), n, p=probs(rng, 40, next(s)))
    return df


N_CODED_SHIFTS = 5


def probs(rng, k, tilt):
    w = np.linspace(1.0, 1.0 + 3 * tilt, k) * rng.uniform(0.8, 1.2, k)
    return w / w.sum()


def cases():
    out = []
    for seed in SEEDS:
        for ref_n, cur_n in SIZES:
            for fmt in FORMATS:
                overrides = seed == 1 and fmt == "parquet" or seed == 2 and fmt == "csv"
                declared = seed == 3 or seed == 1 and fmt == "parquet"
                out.append((seed, ref_n, cur_n, fmt, overrides, declared))
    return out


CASES = cases()


def case_id(c):
    seed, ref_n, cur_n, fmt, overrides, declared = c
    return f"seed{seed}-{ref_n}x{cur_n}-{fmt}" + ("-overrides" if overrides else "") + ("-declared" if declared else "")


def write(df, path):
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)


@pytest.fixture(scope="module")
def evidently_results(tmp_path_factory):
    """Writes every case's files and runs Evidently on all of them in one interpreter."""
    if not EVIDENTLY_PY.exists():
        pytest.fail(f"{EVIDENTLY_PY} is missing: run scripts/evidently-env.sh first")
    root = tmp_path_factory.mktemp("drift")
    jobs = []
    for seed, ref_n, cur_n, fmt, overrides, declared in CASES:
        rng = np.random.default_rng(seed * 1000 + ref_n + cur_n)
        zero = [0.0] * N_SHIFTS
        shift = list(rng.choice([0.0, 0.0, 0.05, 0.3], N_SHIFTS))
        crng = np.random.default_rng(seed * 7919 + ref_n + cur_n)
        coded_shift = list(crng.choice([0.0, 0.0, 0.05, 0.3], N_CODED_SHIFTS))
        d = root / f"{seed}-{ref_n}-{cur_n}-{fmt}"
        d.mkdir()
        ref, cur = d / f"ref.{fmt}", d / f"cur.{fmt}"
        write(dataset(rng, ref_n, zero).join(coded(crng, ref_n, [0.0] * N_CODED_SHIFTS)), ref)
        write(dataset(rng, cur_n, shift).join(coded(crng, cur_n, coded_shift)), cur)
        job = {"reference": str(ref), "current": str(cur)}
        if overrides:
            job.update(OVERRIDES)
        if declared:
            job.update(DECLARED)
        jobs.append(job)
    jobs.append(padded_job(root))
    jobs_file = root / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    proc = subprocess.run(
        [str(EVIDENTLY_PY), str(EVIDENTLY_TOOL), "--jobs", str(jobs_file)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(zip([*map(case_id, CASES), PADDED], zip(jobs, json.loads(proc.stdout))))


PADDED = "padded-codes-csv"


def padded_job(root):
    """Codes written "001".."005" in the reference and partly "1".."5" in the current: as text
    (pandas with dtype=str) these are new categories, as numbers they are the same values."""
    rng = np.random.default_rng(11)
    codes = [f"{i:03d}" for i in range(1, 6)]
    ref = pd.DataFrame({"code": rng.choice(codes, 300), "x": rng.normal(0, 1, 300)})
    cur_codes = rng.choice(codes, 200).astype(object)
    cur_codes[:60] = [c.lstrip("0") for c in cur_codes[:60]]
    cur = pd.DataFrame({"code": cur_codes, "x": rng.normal(0, 1, 200)})
    d = root / PADDED
    d.mkdir()
    write(ref, d / "ref.csv")
    write(cur, d / "cur.csv")
    return {"reference": str(d / "ref.csv"), "current": str(d / "cur.csv"), "categorical": ["code"]}


def slipway_cmd(job):
    cmd = [slipway_bin(), "drift", "--reference", job["reference"], "--current", job["current"]]
    cmd.append("--json")
    for col, m in job.get("methods", {}).items():
        cmd += ["--column-method", f"{col}={m}"]
    for col, t in job.get("thresholds", {}).items():
        cmd += ["--column-threshold", f"{col}={t}"]
    for flag in ("numerical", "categorical"):
        if job.get(flag):
            cmd += [f"--{flag}", ",".join(job[flag])]
    return cmd


def run_slipway(job):
    proc = subprocess.run(slipway_cmd(job), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_drift_matches_evidently(evidently_results, case):
    assert_agrees(*evidently_results[case_id(case)])


def test_zero_padded_codes_declared_categorical_stay_text(evidently_results):
    job, expected = evidently_results[PADDED]
    got = assert_agrees(job, expected)
    code = next(c for c in got["columns"] if c["column"] == "code")
    # "1" is not "001": a category the reference never had, so chi-square's p is 0.
    assert (code["type"], code["method"], code["statistic"], code["drifted"]) == ("categorical", "chisquare", 0.0, True)
    # Left to inference, pandas and Slipway both read the codes as the integers 1..5.
    undeclared = run_slipway({k: v for k, v in job.items() if k != "categorical"})
    code = next(c for c in undeclared["columns"] if c["column"] == "code")
    assert code["statistic"] > 0.05 and not code["drifted"]


def assert_agrees(job, expected):
    got = run_slipway(job)
    ours = {c["column"]: c for c in got["columns"]}
    assert sorted(ours) == sorted(c["column"] for c in expected["columns"])
    for exp in expected["columns"]:
        name = exp["column"]
        mine = ours[name]
        # Evidently's ValueDrift value and its own stattest agree, or the comparison is moot.
        assert math.isclose(exp["statistic"], exp["recomputed"], rel_tol=1e-12, abs_tol=0)
        assert mine["type"] == exp["type"], name
        assert mine["method"] == exp["method"], name
        assert mine["threshold"] == exp["threshold"], name
        assert math.isclose(mine["statistic"], exp["statistic"], rel_tol=REL_TOL, abs_tol=ABS_TOL), (
            f"{name} ({exp['method']}): slipway {mine['statistic']!r}, evidently {exp['statistic']!r}"
        )
        assert mine["drifted"] == exp["drifted"], name
    assert got["number_of_drifted_columns"] == expected["count"]
    assert math.isclose(got["share_of_drifted_columns"], expected["share"], rel_tol=1e-12)
    assert got["dataset_drift"] == expected["dataset_drift"]
    return got


def test_the_cases_cover_every_method_and_both_verdicts(evidently_results):
    """Guards the generator: a change that stopped exercising a method would fail here."""
    methods, verdicts, datasets = set(), set(), set()
    for _, expected in evidently_results.values():
        for c in expected["columns"]:
            methods.add(c["method"])
            verdicts.add(c["drifted"])
        datasets.add(expected["dataset_drift"])
    assert methods == {"ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi", "kl_div", "hellinger"}
    assert verdicts == {True, False}
    assert datasets == {True, False}


def test_declared_cases_change_types_and_reach_every_default(evidently_results):
    """Guards the declared cases: each declared column takes its declared type where inference
    gives the other one, and between them they reach every default test of their type."""
    seen = {}  # (column, declared, format) -> {(type, method)}
    for case in CASES:
        job, expected = evidently_results[case_id(case)]
        for c in expected["columns"]:
            if c["column"] in DECLARED["numerical"] + DECLARED["categorical"] and c["column"] not in job.get(
                "methods", {}
            ):
                seen.setdefault((c["column"], case[-1], case[3]), set()).add((c["type"], c["method"]))

    def types(column, declared, formats=FORMATS):
        return {t for fmt in formats for t, _ in seen.get((column, declared, fmt), ())}

    def methods(columns):
        return {m for (col, declared, _), v in seen.items() if declared and col in columns for _, m in v}

    for column in DECLARED["numerical"]:
        assert types(column, True) == {"numeric"}, column
        assert types(column, False) == {"categorical"}, column
    for column in DECLARED["categorical"]:
        assert types(column, True) == {"categorical"}, column
    assert types("code_int_cat", False) == {"numeric"}
    # pandas reads undeclared zero-padded codes in CSV as numbers (nulls make them float).
    assert types("zip_str_cat", False, ["csv"]) == {"numeric"}
    assert methods(DECLARED["numerical"]) == {"ks", "wasserstein", "chisquare", "z", "jensenshannon"}
    assert methods(DECLARED["categorical"]) == {"chisquare", "jensenshannon"}


def test_drift_json_into_a_closed_pipe_exits_quietly(tmp_path):
    """`slipway drift --json | head -c 10`: the report is far larger than the pipe's buffer, so
    the write after head exits fails with EPIPE; that ends the output, not in an error."""
    wide = pd.DataFrame({f"c{i}": np.arange(50) % (i + 2) for i in range(400)})
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.csv"
    write(wide, ref)
    write(wide.iloc[::-1], cur)
    assert_quiet_into_closed_pipe(slipway_cmd({"reference": str(ref), "current": str(cur)}), tmp_path)
