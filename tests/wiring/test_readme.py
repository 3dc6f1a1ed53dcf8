"""The README's configuration table must name every setting (it is the operator's reference)."""

from __future__ import annotations

from switchboard.settings import PROJECT_ROOT, Settings


def test_readme_documents_every_setting():
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"SWITCHBOARD_{name.upper()}" not in readme]
    assert missing == []


def test_ci_runs_the_readme_test_command():
    readme = (PROJECT_ROOT / "README.md").read_text()
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "scripts/test" in readme
    assert "exec scripts/test" in ci
