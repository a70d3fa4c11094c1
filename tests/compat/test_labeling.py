"""Labeling queues on the shared server: eight labellers on one queue of 10,000 items label
each exactly once; a labeller killed while holding leases loses them when they run out and
others finish its items; a label is taken once, from the lease's holder; the labels come back
as a data version."""

import json
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import requests
from conftest import slipway_bin, unique
from registry_helpers import run_cli

API = "/api/v1/labeling"


def make_queue(server, n, lease_seconds):
    name = unique("review")
    r = requests.post(server.url + API, json={"name": name, "deployment": unique("fraud"), "labels": ["fraud", "ok"],
                                              "lease_seconds": lease_seconds}, timeout=30)
    assert r.ok, r.text
    items = [{"request_id": f"req-{i}", "inputs": {"amount": i, "country": "FR" if i % 3 else "DE"},
              "prediction": 0.5} for i in range(n)]
    r = requests.post(f"{server.url}{API}/{name}/items", json={"items": items}, timeout=120)
    assert r.ok and r.json()["added"] == n, r.text
    return name


def test_eight_labellers_label_ten_thousand_items_once_each_despite_a_killed_one(server):
    n = 10_000
    queue = make_queue(server, n, lease_seconds=2)
    base = f"{server.url}{API}/{queue}"

    # One labeller takes three items and is killed holding them.
    grabber = subprocess.Popen([sys.executable, "-c", (
        "import requests, sys, time\n"
        "for _ in range(3):\n"
        f"    it = requests.get('{base}/next', headers={{'X-Slipway-Actor': 'doomed'}}, timeout=30).json()['item']\n"
        "    print(it['item_id'], flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    held = [int(grabber.stdout.readline()) for _ in range(3)]
    grabber.send_signal(signal.SIGKILL)
    grabber.wait(timeout=10)

    done, failures, lock = [], [], threading.Lock()

    def labeller(who):
        s = requests.Session()
        s.headers["X-Slipway-Actor"] = who
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            item = s.get(f"{base}/next", timeout=30).json()["item"]
            if item is None:
                if s.get(base, timeout=30).json()["queue"]["counts"]["labelled"] == n:
                    return
                time.sleep(0.2)  # leases held elsewhere may still run out
                continue
            label = "fraud" if item["inputs"]["amount"] % 7 == 0 else "ok"
            r = s.post(f"{base}/label", json={"item_id": item["item_id"], "lease_token": item["lease_token"],
                                              "label": label}, timeout=30)
            with lock:
                (done if r.ok else failures).append((who, item["item_id"], r.status_code, r.text[:200]))

    threads = [threading.Thread(target=labeller, args=(f"labeller-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    ids = [item_id for _, item_id, _, _ in done]
    assert len(ids) == n and len(set(ids)) == n, (len(ids), len(set(ids)))
    assert {who for who, *_ in done} == {f"labeller-{i}" for i in range(8)}, "every labeller took part"
    # The killed labeller's items were finished by the others after its leases ran out.
    finishers = {item_id: who for who, item_id, *_ in done}
    assert all(finishers[i] != "doomed" for i in held)
    counts = requests.get(base, timeout=30).json()["queue"]["counts"]
    assert counts == {"queued": 0, "leased": 0, "labelled": n}, counts


def test_a_label_is_taken_once_from_the_lease_holder_and_exported_as_a_data_version(server, tmp_path):
    queue = make_queue(server, 3, lease_seconds=60)
    base = f"{server.url}{API}/{queue}"
    ann = {"X-Slipway-Actor": "ann"}
    item = requests.get(f"{base}/next", headers=ann, timeout=30).json()["item"]
    other = requests.get(f"{base}/next", headers={"X-Slipway-Actor": "ben"}, timeout=30).json()["item"]
    assert item["item_id"] != other["item_id"]
    label = lambda body, who=ann: requests.post(f"{base}/label", json=body, headers=who, timeout=30)  # noqa: E731
    wrong = label({"item_id": item["item_id"], "lease_token": other["lease_token"], "label": "ok"})
    assert wrong.status_code == 400 and wrong.json()["error_code"] == "INVALID_STATE", wrong.text
    off = label({"item_id": item["item_id"], "lease_token": item["lease_token"], "label": "maybe"})
    assert off.status_code == 400 and "not one of" in off.json()["message"]
    unknown = label({"item_id": 10**9, "lease_token": "x", "label": "ok"})
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    missing = requests.get(f"{server.url}{API}/no-such-queue/next", timeout=30)
    assert missing.status_code == 404
    assert label({"item_id": item["item_id"], "lease_token": item["lease_token"], "label": "fraud"}).ok
    twice = label({"item_id": item["item_id"], "lease_token": item["lease_token"], "label": "ok"})
    assert twice.status_code == 400 and "already labelled" in twice.json()["message"]
    assert label({"item_id": other["item_id"], "lease_token": other["lease_token"], "label": "ok"},
                 {"X-Slipway-Actor": "ben"}).ok

    data_set = unique("labels")
    p = run_cli(slipway_bin(), "labeling", "export", queue, "--data-set", data_set, "--alias", "train",
                "--tracking-uri", server.url, "--json")
    assert p.returncode == 0, p.stderr
    version = json.loads(p.stdout)
    assert (version["version"], version["rows"], version["aliases"]) == (1, 2, ["train"])
    p = run_cli(slipway_bin(), "data", "get", f"{data_set}@train", str(tmp_path / "out"), "--tracking-uri", server.url)
    assert p.returncode == 0, p.stderr
    exported = pd.read_csv(tmp_path / "out" / f"{queue}.csv")
    assert list(exported.columns) == ["request_id", "row", "amount", "country", "label"]
    assert sorted(exported["label"]) == ["fraud", "ok"]
    listed = run_cli(slipway_bin(), "labeling", "list", "--tracking-uri", server.url)
    assert listed.returncode == 0 and queue in listed.stdout
