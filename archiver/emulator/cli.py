"""``sms-archiver emulator`` and ``python -m archiver.emulator``: serve the emulator in the foreground."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from dataclasses import asdict
from types import FrameType
from zoneinfo import ZoneInfo

from archiver.emulator.data import generate_sample_data
from archiver.emulator.faults import Faults
from archiver.emulator.server import LOOPBACK, EmulatorServer
from archiver.emulator.signatures import DEMO_CREDENTIALS

__all__ = ["build_parser", "faults_from", "serve_forever_cli"]


def _split_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("at least one service name is required")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sms-archiver emulator",
        description="Serve an OVH API v1 SMS emulator on loopback until SIGTERM or SIGINT.",
    )
    parser.add_argument("--host", default=LOOPBACK, choices=[LOOPBACK], help="always 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    parser.add_argument("--services", type=_split_names, default=["sms-demo12345-1"], help="a,b,...")
    parser.add_argument("--outgoing", type=int, default=250, help="outgoing records in total")
    parser.add_argument("--incoming", type=int, default=40, help="incoming records in total")
    parser.add_argument("--days", type=int, default=90, help="history depth in days")
    parser.add_argument("--seed", type=int, default=1, help="data and fault seed")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second")
    parser.add_argument("--error-rate-500", type=float, default=0.0)
    parser.add_argument("--error-rate-429", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--malformed-json-rate", type=float, default=0.0)
    parser.add_argument("--no-batch", action="store_true", help="refuse X-Ovh-Batch requests")
    parser.add_argument("--no-export", action="store_true", help="answer 404 to /sms/{sn}/document")
    parser.add_argument(
        "--clock-offset-seconds", type=int, default=0, help="the server's clock minus the real one (e.g. -3600)"
    )
    parser.add_argument("--listing-cap", type=int, default=None, help="cut id listings at N ids")
    parser.add_argument(
        "--listing-cap-keep",
        choices=["newest", "oldest"],
        default="newest",
        help="which ids a cut listing keeps (default: newest)",
    )
    parser.add_argument(
        "--batch-null-rate", type=float, default=0.0, help="share of batch elements answered as value null, no error"
    )
    parser.add_argument(
        "--export-date-zone", default=None, type=_zone_name, help="write the export's dates in this zone (IANA name)"
    )
    parser.add_argument(
        "--export-date-field",
        default="creationDatetime",
        choices=["creationDatetime", "sentAt"],
        help="what the export's date column holds (default: the creation time)",
    )
    return parser


def _zone_name(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ValueError, KeyError) as error:  # ZoneInfoNotFoundError is a KeyError
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r}") from error
    return text


def faults_from(options: argparse.Namespace) -> Faults:
    """The fault knobs the command's options ask for."""
    return Faults(
        latency_seconds=options.latency_ms / 1000,
        rate_limit_per_second=options.rate_limit,
        error_rate_500=options.error_rate_500,
        error_rate_429=options.error_rate_429,
        drop_rate=options.drop_rate,
        malformed_json_rate=options.malformed_json_rate,
        batch_supported=not options.no_batch,
        export_supported=not options.no_export,
        clock_skew_seconds=options.clock_offset_seconds,
        seed=options.seed,
        listing_cap=options.listing_cap,
        listing_cap_keep=options.listing_cap_keep,
        batch_null_rate=options.batch_null_rate,
        export_date_zone=options.export_date_zone,
        export_date_field=options.export_date_field,
    )


def serve_forever_cli(argv: list[str] | None = None) -> int:
    """Run the emulator in the foreground; print one JSON line (url + demo credentials) on stdout.

    Serves until SIGTERM or SIGINT, then returns 0. Must run in the main thread (signal handlers).
    """
    options = build_parser().parse_args(argv)
    faults = faults_from(options)
    services = generate_sample_data(
        services=options.services,
        outgoing=options.outgoing,
        incoming=options.incoming,
        days=options.days,
        seed=options.seed,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with EmulatorServer(**asdict(DEMO_CREDENTIALS), services=services, faults=faults, port=options.port) as server:
            line = {"url": server.url, **asdict(DEMO_CREDENTIALS)}
            print(json.dumps(line), flush=True)
            while not stop.wait(timeout=1.0):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
