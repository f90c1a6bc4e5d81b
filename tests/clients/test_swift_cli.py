"""The real `swift` CLI (python-swiftclient) and curl against a running onestack."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.test_identity_cli import unique
from tests.conftest import CloudInfo

pytestmark = pytest.mark.clients

SWIFT = str(Path(sys.executable).with_name("swift"))


def swift_env(info: CloudInfo, cloud: str = "onestack-admin") -> dict[str, str]:
    auth = info.cloud(cloud)["auth"]
    env = info.env()
    env.update({
        "OS_AUTH_URL": str(auth["auth_url"]).rstrip("/") + ("" if str(auth["auth_url"]).rstrip(
            "/").endswith("/v3") else "/v3"),
        "OS_USERNAME": auth["username"], "OS_PASSWORD": auth["password"],
        "OS_PROJECT_NAME": auth["project_name"],
        "OS_USER_DOMAIN_NAME": auth.get("user_domain_name", "Default"),
        "OS_PROJECT_DOMAIN_NAME": auth.get("project_domain_name", "Default"),
        "OS_IDENTITY_API_VERSION": "3", "OS_AUTH_VERSION": "3",
    })
    env.pop("OS_CLIENT_CONFIG_FILE", None)
    return env


def swift(info: CloudInfo, *args: str, cwd: Path | None = None, check: bool = True,
          cloud: str = "onestack-admin") -> subprocess.CompletedProcess[str]:
    r = subprocess.run([SWIFT, *args], env=swift_env(info, cloud), capture_output=True,
                       text=True, timeout=300, cwd=cwd)
    if check:
        assert r.returncode == 0, f"swift {' '.join(args)}: {r.stdout}\n{r.stderr}"
    return r


def storage(info: CloudInfo) -> tuple[str, str]:
    """(storage URL, token) as the swift CLI sees them."""
    out = swift(info, "auth").stdout
    values = dict(line.split("=", 1) for line in out.replace("export ", "").split()
                  if "=" in line)
    return values["OS_STORAGE_URL"], values["OS_AUTH_TOKEN"]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_upload_list_stat_post_download_delete(running_cloud: CloudInfo, tmp_path: Path) -> None:
    info = running_cloud
    c = unique("cli")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("alpha\n")
    (tmp_path / "docs" / "b.bin").write_bytes(os.urandom(70_000))
    swift(info, "upload", c, "docs", cwd=tmp_path)
    assert swift(info, "list", c).stdout.split() == ["docs/a.txt", "docs/b.bin"]
    assert c in swift(info, "list").stdout.split()
    stat = swift(info, "stat", c, "docs/a.txt").stdout
    assert "Content Type: text/plain" in stat and "Content Length: 6" in stat
    swift(info, "post", "-m", "color:blue", c, "docs/a.txt")
    assert "Meta Color: blue" in swift(info, "stat", c, "docs/a.txt").stdout
    swift(info, "post", "-m", "owner:ops", c)
    cstat = swift(info, "stat", c).stdout
    assert "Meta Owner: ops" in cstat and "Objects: 2" in cstat
    out = tmp_path / "out"
    swift(info, "download", c, "-D", str(out))
    assert (out / "docs" / "a.txt").read_text() == "alpha\n"
    assert sha256(out / "docs" / "b.bin") == sha256(tmp_path / "docs" / "b.bin")
    swift(info, "delete", c, "docs/a.txt")
    assert swift(info, "list", c).stdout.split() == ["docs/b.bin"]
    swift(info, "delete", c)
    r = swift(info, "stat", c, check=False)
    assert r.returncode != 0 and "not found" in (r.stderr + r.stdout).lower()


@pytest.mark.parametrize("kind", ["slo", "dlo"])
def test_segmented_upload_downloads_the_same_bytes(running_cloud: CloudInfo, tmp_path: Path,
                                                   kind: str) -> None:
    info = running_cloud
    c = unique(kind)
    size = int(os.environ.get("ONESTACK_TEST_LARGE_OBJECT_BYTES", str(24 << 20)))
    src = tmp_path / "big.bin"
    with src.open("wb") as f:
        left = size
        while left:
            n = min(left, 4 << 20)
            f.write(os.urandom(n))
            left -= n
    seg = max(size // 6, 1 << 20)
    args = ["upload", "-S", str(seg), c, "big.bin"]
    args.insert(1, "--use-slo" if kind == "slo" else "--use-dlo")
    swift(info, *args, cwd=tmp_path)
    stat = swift(info, "stat", c, "big.bin").stdout
    assert f"Content Length: {size}" in stat
    assert ("Manifest:" in stat) == (kind == "dlo")
    out = tmp_path / "down.bin"
    swift(info, "download", c, "big.bin", "-o", str(out))
    assert sha256(out) == sha256(src)
    swift(info, "delete", c, "big.bin")
    assert swift(info, "list", c).stdout.split() == []


def test_tempurl_fetched_with_curl(running_cloud: CloudInfo, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    info = running_cloud
    c = unique("temp")
    (tmp_path / "t.txt").write_text("temporary\n")
    swift(info, "upload", c, "t.txt", cwd=tmp_path)
    swift(info, "post", "-m", "Temp-URL-Key:sekrit")
    url, _token = storage(info)
    path = url[url.index("/v1/"):]
    temp = swift(info, "tempurl", "GET", "60", f"{path}/{c}/t.txt", "sekrit").stdout.strip()
    base = url[:url.index("/v1/")]
    r = subprocess.run(["curl", "-sS", "-f", base + temp], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == b"temporary\n"
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        base + temp.replace("temp_url_sig=", "temp_url_sig=0")],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "401"


def test_public_read_container_without_a_token(running_cloud: CloudInfo, tmp_path: Path) -> None:
    info = running_cloud
    c = unique("public")
    (tmp_path / "p.txt").write_text("for all\n")
    swift(info, "upload", c, "p.txt", cwd=tmp_path)
    url, _token = storage(info)
    assert httpx.get(f"{url}/{c}/p.txt").status_code == 401
    swift(info, "post", "-r", ".r:*,.rlistings", c)
    r = httpx.get(f"{url}/{c}/p.txt")
    assert r.status_code == 200 and r.text == "for all\n"
    assert httpx.get(f"{url}/{c}").text == "p.txt\n"
    assert httpx.put(f"{url}/{c}/x", content=b"no").status_code == 401
    # the demo user cannot write into the admin's container either
    demo = swift(info, "--os-storage-url", url, "upload", "--skip-container-put", c, "p.txt",
                 cwd=tmp_path, cloud="onestack", check=False)
    assert demo.returncode != 0 and "403" in demo.stderr
    assert swift(info, "list", c).stdout.split() == ["p.txt"]


def test_versioning(running_cloud: CloudInfo, tmp_path: Path) -> None:
    info = running_cloud
    c, v = unique("ver"), unique("versions")
    swift(info, "post", v)
    swift(info, "post", "-H", f"X-Versions-Location: {v}", c)
    for text in ("one", "two", "three"):
        (tmp_path / "f.txt").write_text(text)
        swift(info, "upload", c, "f.txt", cwd=tmp_path)
    assert len(swift(info, "list", v).stdout.split()) == 2
    swift(info, "delete", c, "f.txt")
    swift(info, "download", c, "f.txt", "-o", str(tmp_path / "got.txt"))
    assert (tmp_path / "got.txt").read_text() == "two"


def test_object_versioning_with_version_ids(running_cloud: CloudInfo, tmp_path: Path) -> None:
    """X-Versions-Enabled through the CLI: ``list --versions``, ``download
    --version-id``, ``delete --version-id``, and ``delete --versions`` empties all."""
    info = running_cloud
    c = unique("objver")
    swift(info, "post", "-H", "X-Versions-Enabled: true", c)
    assert "X-Versions-Enabled: True" in swift(info, "stat", c).stdout
    for text in ("one", "two"):
        (tmp_path / "f.txt").write_text(text)
        swift(info, "upload", c, "f.txt", cwd=tmp_path)
    listing = swift(info, "list", "--versions", "--lh", c).stdout.splitlines()
    rows = [line.split() for line in listing if line.strip().endswith("f.txt")]
    assert len(rows) == 2, listing  # newest first, each with its version id
    newest, oldest = rows[0][3], rows[1][3]  # size, date, time, version id, type, name
    assert newest != oldest and "null" not in (newest, oldest), listing
    swift(info, "download", c, "f.txt", "--version-id", oldest, "-o", str(tmp_path / "old.txt"))
    assert (tmp_path / "old.txt").read_text() == "one"
    swift(info, "delete", c, "f.txt")  # a delete marker: the object is gone, its versions not
    r = swift(info, "download", c, "f.txt", "-o", str(tmp_path / "gone.txt"), check=False)
    assert r.returncode == 1 and "not found" in r.stderr
    swift(info, "delete", c, "f.txt", "--version-id", newest)
    listing = swift(info, "list", "--versions", c).stdout.split()
    assert listing.count("f.txt") == 2  # the marker and the oldest
    swift(info, "delete", "--versions", c)
    r = swift(info, "stat", c, check=False)
    assert r.returncode != 0  # every version, then the container, deleted


def test_expiring_objects_go_after_their_time(running_cloud: CloudInfo, tmp_path: Path) -> None:
    info = running_cloud
    c = unique("exp")
    (tmp_path / "e.txt").write_text("short-lived")
    (tmp_path / "k.txt").write_text("kept")
    swift(info, "upload", c, "k.txt", cwd=tmp_path)
    swift(info, "upload", "-H", "X-Delete-After: 10", c, "e.txt", cwd=tmp_path)
    stat = swift(info, "stat", c, "e.txt", check=False)
    if stat.returncode == 0:  # (a loaded machine may only get here after the time)
        at = int(stat.stdout.split("X-Delete-At:")[1].split()[0])
        time.sleep(max(0.0, at + 1 - time.time()))
    r = swift(info, "download", c, "e.txt", "-o", str(tmp_path / "x"), check=False)
    assert r.returncode != 0
    deadline = time.monotonic() + 30  # the expirer also takes it out of the listing
    while time.monotonic() < deadline:
        if swift(info, "list", c).stdout.split() == ["k.txt"]:
            break
        time.sleep(1)
    assert swift(info, "list", c).stdout.split() == ["k.txt"]


def test_catalog_has_object_store(running_cloud: CloudInfo) -> None:
    url, token = storage(running_cloud)
    assert "/object-store/v1/AUTH_" in url
    r = httpx.get(url, headers={"X-Auth-Token": token})
    assert r.status_code in (200, 204)
    info: Any = httpx.get(url[:url.index("/v1/")] + "/info").json()
    assert "slo" in info and "tempurl" in info
