"""Masking of phone numbers and card UIDs by role (gateway.api.masking)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.api.masking import can_see_card, can_see_phone, mask_card, mask_data, mask_phone


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13800000001", "138****0001"),
        ("+8613800000001", "+86138****0001"),
        ("021-62345678", "021-****5678"),
        ("12345678", "****5678"),
        ("  13800000001 ", "138****0001"),  # surrounding blanks are not part of the number
        ("1234567", "****67"),
        ("12345", "****45"),
        ("1234", "****"),
        ("1", "****"),
        ("", ""),
    ],
)
def test_mask_phone(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("04A1B2C3D4A1B2", "****A1B2"),
        ("A1B2C", "****1B2C"),
        ("A1B2", "****"),  # four or fewer: nothing shown
        ("7", "****"),
        ("", ""),
    ],
)
def test_mask_card(raw: str, masked: str) -> None:
    assert mask_card(raw) == masked


def test_who_sees_what() -> None:
    assert [can_see_phone(r) for r in ("viewer", "guard", "engineer", "supervisor", "admin")] == [
        False,
        True,
        True,
        True,
        True,
    ]
    assert [can_see_card(r) for r in ("viewer", "guard", "engineer", "supervisor", "admin")] == [
        False,
        False,
        False,
        True,
        True,
    ]
    for unknown in ("", "oncall", "Admin", "root"):
        assert not can_see_phone(unknown) and not can_see_card(unknown)


DATA: dict[str, Any] = {
    "card": "0011223344",
    "Card_UID": "AABBCCDD",  # keys match whatever their case
    "door": "east",
    "count": 3,
    "person": {"name": "张工", "mobile": "+8613800000001", "phone": 13800000002},
    "history": [{"uid": "CAFEBABE01"}, {"credential": {"kind": "card", "id": "99887766"}}],
    "team": [["x", {"phone": "13800000003"}]],
    "uid_hint": "not masked: only the exact keys are",
    "phone": None,
    "card_ok": True,
}


def test_viewer_sees_neither_cards_nor_phones() -> None:
    assert mask_data(DATA, "viewer") == {
        "card": "****3344",
        "Card_UID": "****CCDD",
        "door": "east",
        "count": 3,
        "person": {"name": "张工", "mobile": "+86138****0001", "phone": "138****0002"},
        "history": [{"uid": "****BE01"}, {"credential": {"kind": "****", "id": "****7766"}}],
        "team": [["x", {"phone": "138****0003"}]],
        "uid_hint": "not masked: only the exact keys are",
        "phone": None,  # nothing to hide
        "card_ok": True,
    }


def test_guard_and_engineer_see_phones_not_cards() -> None:
    for role in ("guard", "engineer"):
        out = mask_data(DATA, role)
        assert out["person"] == DATA["person"]
        assert out["team"] == DATA["team"]
        assert out["card"] == "****3344" and out["history"][0] == {"uid": "****BE01"}


def test_supervisor_and_admin_see_everything_in_a_copy() -> None:
    for role in ("supervisor", "admin"):
        out = mask_data(DATA, role)
        assert out == DATA
        out["person"]["name"] = "changed"
        assert DATA["person"]["name"] == "张工"  # never the caller's own objects


def test_unknown_role_sees_nothing_and_input_is_untouched() -> None:
    before = repr(DATA)
    assert mask_data(DATA, "nobody") == mask_data(DATA, "viewer")
    assert repr(DATA) == before
    assert mask_data([{"card": "12345678"}], "viewer") == [{"card": "****5678"}]
    assert mask_data("plain text", "viewer") == "plain text"
    assert mask_data(None, "viewer") is None
