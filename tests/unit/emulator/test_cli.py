"""The emulator command's options map onto the fault knobs; bad values are refused by argparse.

The command itself (a JSON line, then serving until SIGTERM) runs in tests/test_emulator.py.
"""

from __future__ import annotations

import pytest

from archiver.emulator.cli import build_parser, faults_from
from archiver.emulator.faults import Faults


def test_defaults_serve_one_demo_service_with_no_faults() -> None:
    options = build_parser().parse_args([])
    assert (options.host, options.port, options.services) == ("127.0.0.1", 0, ["sms-demo12345-1"])
    assert (options.rate_limit, options.listing_cap, options.export_date_zone) == (None, None, None)
    assert (options.no_batch, options.no_export, options.clock_offset_seconds) == (False, False, 0)


def test_services_are_a_comma_list() -> None:
    assert build_parser().parse_args(["--services", " a, b ,,c "]).services == ["a", "b", "c"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--services", " , "],
        ["--host", "0.0.0.0"],
        ["--export-date-zone", "Mars/Olympus_Mons"],
        ["--listing-cap-keep", "middle"],
        ["--port", "eighty"],
    ],
)
def test_bad_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_a_known_zone_is_kept_as_named() -> None:
    assert build_parser().parse_args(["--export-date-zone", "America/New_York"]).export_date_zone == "America/New_York"


def test_every_option_reaches_its_fault_knob() -> None:
    argv = [
        "--latency-ms", "250", "--rate-limit", "3.5", "--error-rate-500", "0.1", "--error-rate-429", "0.2",
        "--drop-rate", "0.3", "--malformed-json-rate", "0.4", "--no-batch", "--no-export",
        "--clock-offset-seconds", "-3600", "--seed", "9", "--listing-cap", "50", "--listing-cap-keep", "oldest",
        "--batch-null-rate", "0.5", "--export-date-zone", "UTC", "--export-date-field", "sentAt",
    ]  # fmt: skip
    assert faults_from(build_parser().parse_args(argv)) == Faults(
        latency_seconds=0.25,
        rate_limit_per_second=3.5,
        error_rate_500=0.1,
        error_rate_429=0.2,
        drop_rate=0.3,
        malformed_json_rate=0.4,
        batch_supported=False,
        export_supported=False,
        clock_skew_seconds=-3600,
        seed=9,
        listing_cap=50,
        listing_cap_keep="oldest",
        batch_null_rate=0.5,
        export_date_zone="UTC",
        export_date_field="sentAt",
    )


def test_no_options_ask_for_no_faults_but_a_seed() -> None:
    assert faults_from(build_parser().parse_args([])) == Faults(seed=1)
