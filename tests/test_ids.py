"""Response ids: opaque to clients, carrying the deployment and the upstream id, growing with time."""

from __future__ import annotations

import pytest

from respgate.ids import ResponseRef, decode_response_id, encode_response_id, new_local_response_id


def test_round_trip_keeps_the_upstream_id_exactly() -> None:
    rid = encode_response_id("dep123", "resp_0123abc:with:colons")
    assert rid.startswith("resp_")
    assert decode_response_id(rid) == ResponseRef("dep123", "resp_0123abc:with:colons")


def test_ids_sort_by_creation_time() -> None:
    ids = [new_local_response_id("zzz"), new_local_response_id("aaa"), new_local_response_id("mmm")]
    assert ids == sorted(ids)  # later ids sort after earlier ones whatever the deployment


@pytest.mark.parametrize("rid", ["", "resp_", "msg_abc", "resp_" + "g" * 13 + "ZGVwOnVw", "resp_" + "0" * 13,
                                 "resp_" + "0" * 13 + "!!!", "resp_" + "0" * 13 + "bm9jb2xvbg",
                                 "resp_" + "A" * 40, "resp_" + "0" * 600])
def test_anything_else_decodes_to_none(rid: str) -> None:
    assert decode_response_id(rid) is None
