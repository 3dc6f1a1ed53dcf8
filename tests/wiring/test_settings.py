"""Settings defaults that depend on other settings."""

from __future__ import annotations

import pytest

from switchboard.settings import Settings


def test_unset_origins_follow_the_bind_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_ALLOWED_ORIGINS", raising=False)
    assert Settings(port=8765).allowed_origins == ["http://127.0.0.1:8765", "http://localhost:8765"]
    assert Settings(host="10.0.0.5", port=80).allowed_origins == [
        "http://10.0.0.5:80",
        "http://127.0.0.1:80",
        "http://localhost:80",
    ]
    # Binding every interface says nothing about the public name: only loopback is assumed.
    assert Settings(host="0.0.0.0", port=9000).allowed_origins == [
        "http://127.0.0.1:9000",
        "http://localhost:9000",
    ]


def test_configured_origins_are_kept_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_ALLOWED_ORIGINS", '["https://desk.bank.example"]')
    assert Settings(port=8765).allowed_origins == ["https://desk.bank.example"]
    monkeypatch.delenv("SWITCHBOARD_ALLOWED_ORIGINS")
    assert Settings(allowed_origins=[]).allowed_origins == []
