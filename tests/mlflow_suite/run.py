#!/usr/bin/env python3
"""Run MLflow's own server tests against MLflow and against Slipway, and compare.

    .venv/bin/python tests/mlflow_suite/run.py --mlflow-tests /path/to/mlflow/tests

Runs each test file twice with pytest: once as MLflow wrote it (its fixtures serve MLflow's
own server app, the one `mlflow server` runs) and once with `slipway_shim` loaded, which
makes the same fixtures start `slipway server` instead. A test that passes on MLflow and does
not pass on Slipway is a difference; one listed in `expected_differences.txt` (with its
reason) is allowed. Exits 1 on any other difference, 2 when a run could not start.
"""

import argparse
import fnmatch
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_FILES = ["tests/tracking/test_model_registry.py", "tests/tracking/test_rest_tracking.py"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mlflow-tests", required=True, type=Path, help="mlflow's tests/ directory (v3.17.x)")
    p.add_argument("--slipway-bin", default=os.environ.get("SLIPWAY_BIN", str(REPO / "target/debug/slipway")))
    p.add_argument("--python", default=sys.executable, help="interpreter with mlflow and pytest installed")
    p.add_argument("--files", nargs="+", default=DEFAULT_FILES, help="test files, relative to the checkout")
    p.add_argument("--expected", type=Path, default=HERE / "expected_differences.txt")
    p.add_argument("--out", type=Path, default=Path("mlflow-suite-results"), help="where reports go")
    p.add_argument("-k", dest="keyword", help="pytest -k expression, passed to both runs")
    return p.parse_args()


def run_pytest(args, checkout: Path, target: str) -> dict:
    """Runs the files once against `target` ("mlflow" or "slipway"); outcome per node id."""
    xml = args.out / f"{target}.xml"
    cmd = [args.python, "-m", "pytest", *args.files, "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"]
    cmd += ["-o", "junit_family=xunit2"]
    if args.keyword:
        cmd += ["-k", args.keyword]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(checkout), str(HERE), os.environ.get("PYTHONPATH", "")]))
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    # MLflow's fixtures still build a file store in-process (param "file"); MLflow's own CI
    # opts out of the file store's maintenance-mode refusal the same way.
    env.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    if target == "slipway":
        cmd += ["-p", "slipway_shim"]
        env["SLIPWAY_BIN"] = str(Path(args.slipway_bin).resolve())
    log = args.out / f"{target}.log"
    with open(log, "wb") as f:
        rc = subprocess.call(cmd, cwd=checkout, env=env, stdout=f, stderr=subprocess.STDOUT)
    if not xml.exists() or rc not in (0, 1):
        sys.exit(f"pytest against {target} did not run (rc {rc}); see {log}")
    return outcomes(xml)


def outcomes(xml: Path) -> dict:
    result = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        node = f"{path}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "skipped" in kinds:
            result[node] = "skipped"
        elif kinds & {"failure", "error"}:
            result[node] = "failed"
        else:
            result[node] = "passed"
    return result


def expected_differences(path: Path) -> list:
    """(pattern, reason) per line `PATTERN | reason`; patterns are fnmatch globs on node ids."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, reason = line.partition("|")
        if not sep or not reason.strip():
            sys.exit(f"{path}:{n}: every expected difference needs a reason after '|'")
        out.append((pattern.strip(), reason.strip()))
    return out


def main():
    args = parse_args()
    tests_dir = args.mlflow_tests.resolve()
    checkout = tests_dir.parent
    if tests_dir.name != "tests" or not (tests_dir / "tracking").is_dir():
        sys.exit(f"{tests_dir} is not mlflow's tests/ directory")
    args.out.mkdir(parents=True, exist_ok=True)
    args.out = args.out.resolve()
    ref = run_pytest(args, checkout, "mlflow")
    ours = run_pytest(args, checkout, "slipway")
    allowed = expected_differences(args.expected)

    def count(r, what):
        return sum(1 for v in r.values() if v == what)

    for name, r in (("mlflow server", ref), ("slipway server", ours)):
        print(f"{name}: {count(r, 'passed')} passed, {count(r, 'failed')} failed, {count(r, 'skipped')} skipped")
    differences = sorted(n for n, v in ref.items() if v == "passed" and ours.get(n) != "passed")
    unexpected, listed, used = [], [], set()
    for node in differences:
        match = next(((p, why) for p, why in allowed if fnmatch.fnmatchcase(node, p)), None)
        if match:
            listed.append((node, match[1]))
            used.add(match[0])
        else:
            unexpected.append(node)
    print(f"passed on mlflow, not on slipway: {len(differences)} ({len(listed)} listed, {len(unexpected)} not)")
    for node, why in listed:
        print(f"  expected  {node}  ({why})")
    for node in unexpected:
        print(f"  DIFFERENT {node}")
    for pattern, _ in allowed:
        if pattern not in used:
            print(f"  stale entry in {args.expected.name}: {pattern}")
    fixed = sorted(n for n, v in ours.items() if v == "passed" and ref.get(n) != "passed")
    if fixed:
        print(f"passed on slipway, not on mlflow: {len(fixed)}")
    print(f"logs and JUnit reports: {args.out}")
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
