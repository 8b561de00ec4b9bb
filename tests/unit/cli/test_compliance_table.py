"""The audit table's cells: readable at a glance (``audit --json`` keeps every detail)."""

from __future__ import annotations

from archiver.cli.commands.compliance import _pairs


def test_a_long_list_is_counted_a_digest_shortened_and_a_cell_bounded() -> None:
    digest = "hmac-sha256:" + "ab" * 32
    cell = _pairs({"number": digest, "ids": {"outgoing": list(range(10_000, 10_050)), "incoming": []}})
    assert "10000, 10001, 10002, … 50 in all" in cell
    assert "incoming=}" in cell or "incoming=," in cell
    assert digest not in cell and "hmac-sha256:abababababab…" in cell
    assert len(_pairs({f"key{n}": "x" * 20 for n in range(40)})) <= 160
    assert _pairs({"hold": "hold-20261202-abcdef", "counts": [1, 2]}) == "hold=hold-20261202-abcdef, counts=1, 2"
