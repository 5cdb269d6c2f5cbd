"""Measure the local Salesforce emulator: start time, REST latency, Bulk 2.0 throughput.

    .venv/bin/python benchmarks/bench_emulator.py [--rows 100000] [--out results.json]

Everything goes through the real simple-salesforce client over HTTPS, as the pipeline
does. The upsert runs twice on the same keys: first every row is created, then every row
is updated. ``server_seconds`` is the job's own processing time; the wall time adds the
client building the CSV, the upload and polling.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from salesforce_emulator import process  # noqa: E402

KEY = "Activity_Sync_Key__c"


def _timed(call, repeat: int) -> dict[str, float]:
    call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
    }


def _start_seconds(seed: str | None) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.perf_counter()
        emu = process.start(data_dir, seed=seed)
        seconds = time.perf_counter() - started
        emu.stop()
    return round(seconds, 2)


def _upsert(sf, emu, records: list[dict]) -> dict[str, float]:
    started = time.perf_counter()
    result = sf.bulk2.Task.upsert(records=records, external_id_field=KEY, wait=0.2)
    wall = time.perf_counter() - started
    assert result[0]["numberRecordsFailed"] == 0, result
    job = (
        emu.session()
        .get(
            f"{emu.info.instance_url}/services/data/v59.0/jobs/ingest/{result[0]['job_id']}",
            headers={"Authorization": f"Bearer {emu.info.access_token}"},
        )
        .json()
    )
    server = job["totalProcessingTime"] / 1000
    return {
        "wall_seconds": round(wall, 2),
        "rows_per_second": round(len(records) / wall),
        "server_seconds": round(server, 2),
        "server_rows_per_second": round(len(records) / server),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    results: dict[str, object] = {
        "start_seconds_no_seed": _start_seconds(None),
        "start_seconds_demo_seed": _start_seconds("demo"),
    }
    with tempfile.TemporaryDirectory() as data_dir, process.start(data_dir, seed="demo") as emu:
        sf = emu.simple_salesforce()
        contact = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
        results["rest_latency"] = {
            "query_one_row": _timed(
                lambda: sf.query(f"SELECT Id, Email FROM Contact WHERE Id = '{contact}'"),
                args.repeat,
            ),
            "query_by_email_indexed": _timed(
                lambda: sf.query("SELECT Id FROM Contact WHERE Email = 'nobody@example.com'"),
                args.repeat,
            ),
            "get_record": _timed(lambda: sf.Contact.get(contact), args.repeat),
            "limits": _timed(sf.limits, args.repeat),
            "create_task": _timed(
                lambda: sf.Task.create({"Subject": "bench", "WhoId": contact}), args.repeat // 4
            ),
        }
        contacts = [r["Id"] for r in sf.query_all("SELECT Id FROM Contact")["records"]]
        records = [
            {
                KEY: f"as1_{i:040x}",
                "Subject": f"Email: benchmark {i}",
                "WhoId": contacts[i % len(contacts)],
                "Status": "Completed",
                "ActivityDate": time.strftime("%Y-%m-%d", time.gmtime()),
                "Description": "Hello " * 20,
            }
            for i in range(args.rows)
        ]
        results["bulk_upsert_create"] = _upsert(sf, emu, records)
        results["bulk_upsert_update"] = _upsert(sf, emu, records)
        started = time.perf_counter()
        rows = sum(
            page.count("\n") - 1
            for page in sf.bulk2.Task.query(
                f"SELECT Id, {KEY}, WhoId FROM Task", max_records=50_000, wait=0.2
            )
        )
        seconds = time.perf_counter() - started
        results["bulk_query"] = {
            "rows": rows,
            "seconds": round(seconds, 2),
            "rows_per_second": round(rows / seconds),
        }
        started = time.perf_counter()
        count = len(sf.query_all(f"SELECT Id, {KEY} FROM Task")["records"])
        seconds = time.perf_counter() - started
        results["rest_query_all"] = {
            "rows": count,
            "seconds": round(seconds, 2),
            "rows_per_second": round(count / seconds),
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
