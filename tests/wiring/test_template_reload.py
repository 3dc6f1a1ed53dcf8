"""Templates are re-read from disk while developing, never in production (a stat per include)."""

from __future__ import annotations

from pathlib import Path

from switchboard.app import create_app
from switchboard.settings import Settings
from switchboard.templating import templates


def test_production_renders_do_not_stat_templates(tmp_path: Path) -> None:
    try:
        create_app(Settings(environment="production", data_dir=tmp_path, secret_key="k" * 40))
        assert templates.env.auto_reload is False
        create_app(Settings(environment="development", data_dir=tmp_path))
        assert templates.env.auto_reload is True
    finally:
        templates.env.auto_reload = True  # as the other tests' apps leave it
