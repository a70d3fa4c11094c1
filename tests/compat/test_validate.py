"""`slipway validate` as a user runs it: files written with pandas (CSV and Parquet), a schema
inferred from a reference, saved, edited and passed back, every rule broken once, and bad
input refused with exit status 1. Nothing here depends on Slipway's internals: only the
binary, its JSON and its exit status."""

import json
import os
import pty
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import assert_quiet_into_closed_pipe, slipway_bin


def run(*args, check=True):
    p = subprocess.run([slipway_bin(), "validate", *map(str, args)], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}: {p.stderr}")
    return p


def write(df, path):
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def reference(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    score = rng.normal(50, 10, n)
    score[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "score": score,
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "id": [f"u{i}" for i in range(n)],
        }
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_reference_passes_its_own_schema_and_schema_matches_pandas(tmp_path, fmt):
    df = reference()
    ref = write(df, tmp_path / f"ref.{fmt}")
    schema_path = tmp_path / "schema.json"
    run("--reference", ref, "--infer-schema", schema_path)
    schema = json.loads(schema_path.read_text())
    cols = {c["name"]: c for c in schema["columns"]}
    assert [c["name"] for c in schema["columns"]] == list(df.columns)
    assert cols["age"]["type"] == "integer" and not cols["age"]["nullable"]
    assert (cols["age"]["min"], cols["age"]["max"]) == (df.age.min(), df.age.max())
    assert cols["score"]["type"] == "float" and cols["score"]["nullable"]
    assert cols["score"]["min"] == df.score.min() and cols["score"]["max"] == df.score.max()
    rate = df.score.isna().mean()
    assert rate < cols["score"]["max_null_fraction"] <= rate + max(0.01, rate / 2) + 1e-4
    assert cols["city"]["allowed_values"] == sorted(df.city.unique())
    # 2000 distinct ids: too many to list as categories.
    assert "allowed_values" not in cols["id"]

    out = json.loads(run("--schema", schema_path, "--current", ref, "--json").stdout)
    assert out["passed"] and out["violations"] == [] and out["rows"] == len(df)
    summary = {c["column"]: c for c in out["columns"]}
    assert summary["score"]["nulls"] == df.score.isna().sum()
    assert summary["id"]["distinct"] == pytest.approx(df.id.nunique(), rel=0.05)
    assert summary["city"]["distinct"] == 3 and summary["city"]["distinct_exact"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_every_violation_names_column_rule_observed_and_expected(tmp_path, fmt):
    ref = write(reference(), tmp_path / f"ref.{fmt}")
    cur_df = reference(500, seed=1).drop(columns=["id"])
    cur_df["age"] = cur_df["age"].astype(float)
    cur_df.loc[0, "age"] = 17.5  # type (float) and min
    cur_df.loc[1, "age"] = np.nan  # not_null
    cur_df.loc[2, "score"] = 1e6  # max
    cur_df.loc[:199, "score"] = np.nan  # 40% nulls
    cur_df.loc[3:5, "city"] = "rome"
    cur_df["extra"] = 1
    cur = write(cur_df, tmp_path / f"cur.{fmt}")
    p = run("--reference", ref, "--current", cur, "--json", "--fail-on-violation", check=False)
    assert p.returncode == 3, p.stderr
    out = json.loads(p.stdout)
    got = {(v["column"], v["rule"]): v for v in out["violations"]}
    assert set(got) == {
        ("age", "type"),
        ("age", "not_null"),
        ("score", "max_null_fraction"),
        ("city", "allowed_values"),
        ("id", "column_present"),
        ("extra", "unexpected_column"),
        ("score", "max"),
    }
    assert got[("age", "type")]["observed"] == "float"
    assert got[("age", "type")]["expected"] == "integer"
    assert got[("age", "not_null")]["observed"]["nulls"] == 1
    assert got[("score", "max_null_fraction")]["observed"] == pytest.approx(cur_df.score.isna().mean())
    city = got[("city", "allowed_values")]["observed"]
    assert city["unexpected_values"] == [{"value": "rome", "count": 3}] and city["exact"]
    assert got[("city", "allowed_values")]["expected"] == ["lyon", "nice", "paris"]
    assert not out["passed"] and out["number_of_violations"] == len(out["violations"])
    # Without --fail-on-violation the exit status is 0.
    assert run("--reference", ref, "--current", cur, "--json").returncode == 0


def test_range_violations_report_observed_extremes(tmp_path):
    ref = write(pd.DataFrame({"x": [0.0, 1.0, 2.0]}), tmp_path / "ref.csv")
    cur = write(pd.DataFrame({"x": [-0.5, 1.0, 7.25]}), tmp_path / "cur.csv")
    out = json.loads(run("--reference", ref, "--current", cur, "--json").stdout)
    got = {v["rule"]: v for v in out["violations"]}
    assert got["min"]["observed"] == -0.5 and got["min"]["expected"] == {"at_least": 0.0}
    assert got["max"]["observed"] == 7.25 and got["max"]["expected"] == {"at_most": 2.0}


def test_an_edited_schema_is_honoured(tmp_path):
    ref = write(reference(), tmp_path / "ref.csv")
    schema_path = tmp_path / "schema.json"
    run("--reference", ref, "--infer-schema", schema_path)
    schema = json.loads(schema_path.read_text())
    schema["allow_extra_columns"] = True
    for c in schema["columns"]:
        if c["name"] == "city":
            c["allowed_values"].append("rome")
        if c["name"] == "id":
            c["required"] = False
    schema_path.write_text(json.dumps(schema))
    cur_df = reference(300, seed=2).drop(columns=["id"])
    cur_df.loc[0, "city"] = "rome"
    cur_df["extra"] = 0
    cur = write(cur_df, tmp_path / "cur.parquet")
    out = json.loads(run("--schema", schema_path, "--current", cur, "--json").stdout)
    assert out["passed"], out["violations"]


def test_html_report_is_self_contained(tmp_path):
    ref = write(reference(), tmp_path / "ref.csv")
    cur_df = reference(200, seed=3)
    cur_df.loc[0, "city"] = "<script>"
    cur = write(cur_df, tmp_path / "cur.csv")
    html_path = tmp_path / "report.html"
    p = run("--reference", ref, "--current", cur, "--output", html_path)
    assert "validation failed" in p.stdout
    html = html_path.read_text()
    assert html.startswith("<!doctype html>") and "allowed_values" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_bad_input_is_refused_with_a_clear_error(tmp_path):
    ref = write(reference(50), tmp_path / "ref.csv")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "slipway-schema/1", "columns": [{"name": "a", "type": "integer", "nulable": true}]}')
    cases = [
        (["--schema", bad, "--current", ref], "unknown field `nulable`"),
        (["--schema", tmp_path / "missing.json", "--current", ref], "cannot read schema"),
        (["--reference", tmp_path / "ref.txt", "--current", ref], "unknown file format"),
        (["--reference", tmp_path / "nope.csv", "--current", ref], "cannot read"),
    ]
    for args, message in cases:
        p = run(*args, check=False)
        assert p.returncode == 1, (args, p.returncode)
        assert message in p.stderr, p.stderr
    minmax = tmp_path / "minmax.json"
    minmax.write_text('{"format": "slipway-schema/1", "columns": [{"name": "a", "type": "float", "nullable": false, "min": 3, "max": 1}]}')
    p = run("--schema", minmax, "--current", ref, check=False)
    assert p.returncode == 1 and "above max" in p.stderr
    # Neither a reference nor a schema: a usage error.
    assert run("--current", ref, check=False).returncode != 0


def coded(n=400, seed=4):
    """Columns typing gets wrong unaided: zero-padded codes (numbers to pandas' read_csv),
    integer codes with many values (numbers), a measurement with three integer values."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "zip": rng.choice([f"{i:03d}" for i in range(1, 31)], n),
            "code": rng.choice(np.arange(100, 125), n),
            "rooms": rng.choice([1, 2, 3], n),
        }
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_declared_types_decide_the_schema(tmp_path, fmt):
    df = coded()
    ref = write(df, tmp_path / f"ref.{fmt}")
    schema_path = tmp_path / "schema.json"
    run("--reference", ref, "--categorical", "zip,code", "--numerical", "rooms", "--infer-schema", schema_path)
    schema = json.loads(schema_path.read_text())
    assert schema["column_types"] == {"numerical": ["rooms"], "categorical": ["zip", "code"]}
    cols = {c["name"]: c for c in schema["columns"]}
    # As written, as pandas reads the column with dtype=str: "007", not 7.
    assert cols["zip"]["type"] == "string"
    assert cols["zip"]["allowed_values"] == sorted(df.zip.unique())
    # Integer codes: a set of values (25 of them, more than inference lists), no range.
    assert cols["code"]["allowed_values"] == sorted(str(v) for v in df.code.unique())
    assert "min" not in cols["code"] and "max" not in cols["code"]
    # A measurement: any number in the reference's range.
    assert (cols["rooms"]["type"], cols["rooms"]["min"], cols["rooms"]["max"]) == ("float", 1, 3)

    cur_df = coded(100, seed=5)
    cur_df["rooms"] = cur_df["rooms"] + 0.5  # numbers, within range except 3.5
    cur_df.loc[0, "zip"] = "7"  # not "007"
    cur_df.loc[1, "code"] = 99
    cur = write(cur_df, tmp_path / f"cur.{fmt}")
    declared = ["--categorical", "zip,code", "--numerical", "rooms"]
    for source in (["--schema", schema_path], ["--reference", ref, *declared]):
        out = json.loads(run(*source, "--current", cur, "--json").stdout)
        got = {(v["column"], v["rule"]): v for v in out["violations"]}
        assert set(got) == {("zip", "allowed_values"), ("code", "allowed_values"), ("rooms", "max")}, out["violations"]
        assert got[("zip", "allowed_values")]["observed"]["unexpected_values"] == [{"value": "7", "count": 1}]
        assert got[("code", "allowed_values")]["observed"]["unexpected_values"] == [{"value": "99", "count": 1}]


def test_bad_declarations_are_refused_naming_the_column(tmp_path):
    df = coded(50)
    df["city"] = "paris"
    ref = write(df, tmp_path / "ref.csv")
    cases = [
        (["--numerical", "zip,code", "--categorical", "code"], "column 'code' is declared both numerical and"),
        (["--categorical", "zipcode"], "column 'zipcode' is declared categorical but is missing from the reference"),
        (["--numerical", "city"], "column 'city' is declared numerical but holds text in the reference dataset"),
        (["--numerical", "city"], "(such as 'paris')"),
    ]
    for flags, message in cases:
        p = run("--reference", ref, "--current", ref, *flags, check=False)
        assert p.returncode == 1, (flags, p.stderr)
        assert message in p.stderr, p.stderr
    # A schema file carries its own declaration: the flags are refused beside it.
    schema_path = tmp_path / "schema.json"
    run("--reference", ref, "--infer-schema", schema_path)
    p = run("--schema", schema_path, "--current", ref, "--categorical", "zip", check=False)
    assert p.returncode == 2 and "cannot be used with" in p.stderr, p.stderr


def test_json_into_a_closed_pipe_exits_quietly(tmp_path):
    """`slipway validate --json | head -c 10`: the report outgrows the pipe's buffer, the write
    after head exits fails with EPIPE, and that ends the output without an error."""
    wide = pd.DataFrame({f"c{i}": np.arange(50) % (i + 2) for i in range(400)})
    ref = write(wide, tmp_path / "ref.csv")
    argv = [slipway_bin(), "validate", "--reference", ref, "--current", ref, "--json"]
    assert_quiet_into_closed_pipe(argv, tmp_path)


def big_csv(path):
    """A CSV just over the 16 MiB at which the progress line starts."""
    line = "x" * 100 + "\n"
    with open(path, "w") as f:
        f.write("s\n" + line * ((16 << 20) // len(line) + 1000))
    return path


def test_progress_line_only_on_a_terminal(tmp_path):
    big = big_csv(tmp_path / "big.csv")
    args = [slipway_bin(), "validate", "--reference", big, "--current", big, "--json"]
    # stderr captured (not a terminal): nothing but the report.
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert json.loads(p.stdout)["passed"]
    # stderr a terminal: the progress line, ending at 100% for both files.
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(timeout=300) == 0
    text = seen.decode()
    assert "reading:" in text and "reference 100%" in text and "current 100%" in text, text
