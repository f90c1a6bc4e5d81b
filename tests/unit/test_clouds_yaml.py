"""clouds.yaml is written without a YAML library: a YAML parser must read back
exactly what was meant, whatever the passwords look like."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from onestack.config import load_settings
from onestack.identity import bootstrap


@pytest.mark.parametrize("password", [
    "plain", "123", "true", "null", "-dash", "a: b", "# hash", 'quo"te', "back\\slash",
    "tab\there", "ünïcødé", "[list]", "{map}", "0x1F", "1e3", "~", "",
])
def test_what_is_written_reads_back(tmp_path: Path, password: str) -> None:
    settings = load_settings(tmp_path / "state", {"port": 8811}, env={})
    body = bootstrap._clouds_body(settings, {"admin": password, "demo": "other " + password})
    clouds = yaml.safe_load(body)["clouds"]
    admin, demo = clouds[bootstrap.ADMIN_CLOUD], clouds[bootstrap.DEMO_CLOUD]
    assert admin["auth"]["password"] == password
    assert demo["auth"]["password"] == "other " + password
    assert admin["auth"]["auth_url"] == "http://127.0.0.1:8811/identity/v3"
    assert admin["identity_api_version"] == 3 and admin["region_name"] == "RegionOne"
    # and the restart check finds the same passwords in it
    assert bootstrap._passwords_in(body) == {"admin": password, "demo": "other " + password}


def test_restart_check_rejects_other_settings_and_edits(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "state", {"port": 8811}, env={})
    moved = load_settings(tmp_path / "state", {"port": 8812}, env={})
    body = bootstrap._clouds_body(settings, {"admin": "a", "demo": "d"})
    text = f"{bootstrap.STAMP_PREFIX}{bootstrap._digest(body)}\n{body}"

    def current(s: object, t: str) -> bool:
        return bootstrap._clouds_yaml_current(type("I", (), {"settings": s})(), t)  # type: ignore[arg-type]

    assert current(settings, text)
    assert not current(moved, text)  # the port changed: rewrite
    assert not current(settings, text.replace('"a"', '"b"'))  # edited: digest no longer matches
    assert not current(settings, body)  # no stamp line
