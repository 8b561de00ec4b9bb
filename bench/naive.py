"""The baseline: the sequential script a user would write with python-ovh, instrumented for the benchmark.

The core (``archive_outgoing``) is what one finds in forum answers and OVH's own examples: list the
ids with ``client.get('/sms/{sn}/outgoing')``, then a plain for-loop of
``client.get(f'/sms/{sn}/outgoing/{id}')``, each row written with the ``csv`` module. No batching,
no concurrency, no retries, no rate limiting.

What the benchmark adds around it: ``--endpoint`` registers the emulator's URL with python-ovh
(python-ovh only accepts endpoint names it knows), ``--limit`` stops after that many records
(a sample, extrapolated linearly by ``bench/run.py``: the loop is strictly sequential), and one
JSON line on stdout tells how long the listing and the loop took.

Credentials come from python-ovh's usual environment variables: ``OVH_APPLICATION_KEY``,
``OVH_APPLICATION_SECRET`` and ``OVH_CONSUMER_KEY``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import ovh
import ovh.client

FIELDS = (
    "id",
    "creationDatetime",
    "sender",
    "receiver",
    "ptt",
    "tag",
    "message",
    "sentAt",
    "deliveredAt",
    "credits",
    "messageLength",
    "numberOfSms",
    "deliveryReceipt",
    "differedDelivery",
    "tariffCode",
    "batchID",
    "messageID",
)


def archive_outgoing(client: Any, service: str, writer: Any, limit: int | None) -> tuple[int, float, float]:
    """Write the service's sent SMS as CSV rows; return (records, listing seconds, loop seconds)."""
    started = time.perf_counter()
    ids = client.get(f"/sms/{service}/outgoing")
    listed = time.perf_counter()
    count = 0
    for sms_id in ids if limit is None else ids[:limit]:
        sms = client.get(f"/sms/{service}/outgoing/{sms_id}")
        writer.writerow([sms[name] for name in FIELDS])
        count += 1
    return count, listed - started, time.perf_counter() - listed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--endpoint", required=True, help="the emulator's http://127.0.0.1:PORT/1.0 URL")
    parser.add_argument("--output", required=True, help="CSV file to write")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many records (a sample)")
    args = parser.parse_args(argv)

    ovh.client.ENDPOINTS["bench-emulator"] = args.endpoint
    client = ovh.Client(endpoint="bench-emulator")
    started = time.perf_counter()
    records = 0
    listing = loop = 0.0
    with open(args.output, "w", newline="", encoding="utf-8") as output:
        writer = csv.writer(output, delimiter=";")
        writer.writerow(FIELDS)
        for service in client.get("/sms"):
            count, list_seconds, loop_seconds = archive_outgoing(client, service, writer, args.limit)
            records += count
            listing += list_seconds
            loop += loop_seconds
    total = time.perf_counter() - started
    print(json.dumps({"records": records, "list_seconds": listing, "loop_seconds": loop, "seconds": total}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
