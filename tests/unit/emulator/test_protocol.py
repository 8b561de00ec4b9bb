"""Replies and errors: compact UTF-8 JSON, lone surrogates carried as escapes, OVH's error shapes."""

from __future__ import annotations

import json

import pytest

from archiver.emulator.protocol import ApiError, bad_parameter, json_reply, not_found, parse_int


def test_json_is_compact_utf8() -> None:
    reply = json_reply(200, {"message": "caf\u00e9", "n": [1, 2]})
    assert reply.body == '{"message":"café","n":[1,2]}'.encode()
    assert (reply.status, reply.is_json, reply.content_type) == (200, True, "application/json; charset=utf-8")


def test_a_lone_surrogate_goes_out_as_an_escape() -> None:
    reply = json_reply(200, {"message": "half \ud83d caf\u00e9"})
    assert reply.body == b'{"message":"half \\ud83d caf\\u00e9"}'
    assert json.loads(reply.body) == {"message": "half \ud83d caf\u00e9"}


def test_errors_have_ovhs_shape() -> None:
    missing = not_found("id", 42)
    assert (missing.status, missing.payload) == (
        404,
        {"class": "Client::NotFound", "message": "The requested object (id = 42) does not exist"},
    )
    assert bad_parameter("[x] wrong").payload == {"class": "Client::BadRequest", "message": "[x] wrong"}


def test_parse_int_names_the_parameter() -> None:
    assert parse_int("id", "-12") == -12
    with pytest.raises(ApiError) as error:
        parse_int("ptt", "4.0")
    assert (error.value.status, error.value.payload["message"]) == (
        400,
        "[ptt] Given data (4.0) is not valid for type long",
    )
