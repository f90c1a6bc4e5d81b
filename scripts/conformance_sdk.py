"""openstacksdk's own functional tests against onestack: `scripts/conformance sdk`.

openstacksdk ships its functional tests (openstack/tests/functional/). They read the
clouds ``devstack`` (a member of a project), ``devstack-alt`` (another one),
``devstack-admin`` and ``devstack-system-admin`` from clouds.yaml, and every test's
setUp picks an image to work with (OPENSTACKSDK_IMAGE names it). This mode:

* installs the openstacksdk version of the project's .venv, with the tests' own
  dependencies (oslotest, fixtures, testtools) and pytest, into .conformance/sdk-venv;
* starts a fresh `onestack up` (or uses the running cloud named by --state-dir);
* creates an alternate project and user, and a small public image, as the admin;
* writes .conformance/sdk/clouds.yaml with the four clouds;
* runs the identity and image functional tests (pytest, JUnit XML), prints passed /
  failed / skipped, each failure and each skip reason, and writes
  .conformance/sdk/results.json.

Not part of the test suite, like Tempest.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

SUITES = ("openstack.tests.functional.identity", "openstack.tests.functional.image")
ALT = "alt_demo"
IMAGE_NAME = "onestack-sdk-functional"


def ensure_venv(work: Path, project_python: Path) -> Path:
    """.conformance/sdk-venv with the project's openstacksdk version and the test deps."""
    version = subprocess.run(
        [str(project_python), "-c", "import importlib.metadata as m; print(m.version('openstacksdk'))"],
        check=True, capture_output=True, text=True).stdout.strip()
    venv = work / "sdk-venv"
    stamp = venv / f".openstacksdk-{version}"
    if stamp.exists():
        return venv / "bin" / "python"
    print(f"conformance: installing openstacksdk {version} and its test dependencies into {venv} ...",
          flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    with open(work / "sdk-venv-install.log", "wb") as log:
        for packages in (["--upgrade", "pip"],
                         [f"openstacksdk=={version}", "oslotest", "fixtures", "testtools", "pytest"]):
            subprocess.run([*pip, *packages], check=True, stdout=log, stderr=subprocess.STDOUT)
    stamp.touch()
    return venv / "bin" / "python"


class Admin:
    """The few admin calls this mode makes (urllib: nothing beyond the standard library)."""

    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        cloud.service_types()  # token + public endpoints
        self.identity = cloud.auth_url + "/v3"

    def call(self, method: str, url: str, body: Any = None, data: bytes | None = None,
             ctype: str = "application/json") -> Any:
        payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(url, data=payload, method=method,
                                     headers={"X-Auth-Token": self.cloud.token_id, "Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def one(self, collection: str, name: str) -> dict[str, Any] | None:
        items = self.call("GET", f"{self.identity}/{collection}?name={name}")[collection]
        return items[0] if items else None

    def alt_user(self) -> dict[str, str]:
        """A second member user in a second project (the SDK's devstack-alt)."""
        project = self.one("projects", ALT) or self.call(
            "POST", f"{self.identity}/projects", {"project": {"name": ALT, "domain_id": "default"}})["project"]
        password = secrets.token_urlsafe(18)
        user = self.one("users", ALT)
        if user is None:
            user = self.call("POST", f"{self.identity}/users", {"user": {
                "name": ALT, "password": password, "domain_id": "default",
                "default_project_id": project["id"]}})["user"]
        else:
            self.call("PATCH", f"{self.identity}/users/{user['id']}", {"user": {"password": password}})
        member = self.one("roles", "member")
        assert member is not None
        self.call("PUT", f"{self.identity}/projects/{project['id']}/users/{user['id']}/roles/{member['id']}")
        return {"username": ALT, "password": password, "project_name": ALT}

    def image(self) -> None:
        """A small public image for the tests' setUp to pick (they need one to exist)."""
        base = self.cloud.endpoints["image"].rstrip("/")
        found = self.call("GET", f"{base}/v2/images?name={IMAGE_NAME}")["images"]
        if any(i["status"] == "active" for i in found):
            return
        image = self.call("POST", f"{base}/v2/images", {
            "name": IMAGE_NAME, "disk_format": "raw", "container_format": "bare", "visibility": "public"})
        self.call("PUT", f"{base}/v2/images/{image['id']}/file", data=b"\0" * (1 << 20),
                  ctype="application/octet-stream")


def clouds_yaml(cloud: Any, alt: dict[str, str], onestack_clouds: dict[str, Any]) -> dict[str, Any]:
    def entry(auth: dict[str, Any], **scope: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "auth": {"auth_url": cloud.auth_url, "username": auth["username"], "password": auth["password"],
                     "user_domain_name": "Default", **scope},
            "region_name": cloud.region, "identity_api_version": 3, "interface": "public",
        }
        return out

    admin = onestack_clouds["onestack-admin"]["auth"]
    demo = onestack_clouds["onestack"]["auth"]
    project = {"project_domain_name": "Default"}
    return {"clouds": {
        "devstack": entry(demo, project_name=demo["project_name"], **project),
        "devstack-alt": entry(alt, project_name=alt["project_name"], **project),
        "devstack-admin": entry(admin, project_name=admin["project_name"], **project),
        "devstack-system-admin": entry(admin, system_scope="all"),
    }}


def parse_junit(path: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return results
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = str(case.get("classname"))
        if "openstack.tests." in classname:  # pytest names a module by its path under the rootdir
            classname = "openstack.tests." + classname.split("openstack.tests.", 1)[1]
        tid = f"{classname}.{case.get('name')}"
        status, detail = "success", ""
        for tag, name in (("failure", "fail"), ("error", "fail"), ("skipped", "skip")):
            node = case.find(tag)
            if node is not None:
                status = name
                detail = (node.get("message") or "") + "\n" + (node.text or "")
                break
        results[tid] = {"status": status, "seconds": float(case.get("time") or 0), "error": detail.strip()}
    return results


def one_line(detail: str) -> str:
    lines = [ln.strip() for ln in detail.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("openstack.exceptions.", "AssertionError", "testtools.matchers", "E   ")):
            return ln.removeprefix("E   ")[:300]
    return (lines[0] if lines else "")[:300]


def run(args: Any, extra: list[str], *, work: Path, root: Path, start_cloud: Any, cloud_class: Any) -> int:
    import yaml

    python = ensure_venv(work, root / ".venv" / "bin" / "python")
    ws = work / "sdk"
    (ws / "logs").mkdir(parents=True, exist_ok=True)
    if args.state_dir or args.clouds_yaml:
        clouds_path = Path(args.clouds_yaml or Path(args.state_dir) / "clouds.yaml")
        cloud = cloud_class(clouds_path, url=args.url)
    else:
        cloud = start_cloud(ws / "logs" / "onestack.log", {}, args.hash_rounds)
    try:
        admin = Admin(cloud)
        alt = admin.alt_user()
        admin.image()
        conf = ws / "clouds.yaml"
        conf.write_text(yaml.safe_dump(clouds_yaml(cloud, alt, yaml.safe_load(cloud.clouds_yaml.read_text())["clouds"])))
        conf.chmod(0o600)
        # TestImage uploads the file CONTRIBUTING.rst of the directory it runs in (the SDK's
        # source tree, where its authors run it): any bytes do.
        (ws / "CONTRIBUTING.rst").write_text("Image data for openstacksdk's functional TestImage.\n" * 64)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "OPENSTACKSDK_"))}
        env.update(OS_CLIENT_CONFIG_FILE=str(conf), OS_CLOUD="devstack-admin", OPENSTACKSDK_IMAGE=IMAGE_NAME,
                   OPENSTACKSDK_FUNC_TEST_TIMEOUT="60", PYTHONWARNINGS="ignore")
        junit = ws / "junit.xml"
        junit.unlink(missing_ok=True)
        cmd = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", "--pyargs", *SUITES,
               f"--junitxml={junit}", "-o", "junit_family=xunit1", *extra]
        print("conformance: running: " + " ".join(cmd), flush=True)
        started = time.monotonic()
        with open(ws / "logs" / "pytest.log", "wb") as log:
            subprocess.run(cmd, cwd=ws, env=env, stdout=log, stderr=subprocess.STDOUT)
        elapsed = time.monotonic() - started
    finally:
        cloud.stop()
    results = parse_junit(junit)
    counts = {s: sum(1 for r in results.values() if r["status"] == s) for s in ("success", "fail", "skip")}
    (ws / "results.json").write_text(json.dumps({
        "service": "sdk", "suites": SUITES, "passed": counts["success"], "failed": counts["fail"],
        "skipped": counts["skip"], "total": len(results), "elapsed_seconds": round(elapsed, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tests": results,
    }, indent=1, sort_keys=True))
    for label, status in (("Failing", "fail"), ("Skipped", "skip")):
        ids = sorted(t for t, r in results.items() if r["status"] == status)
        if ids:
            print(f"\n{label} tests:")
            for tid in ids:
                print(f"  {tid.removeprefix('openstack.tests.functional.')}\n      {one_line(results[tid]['error'])}")
    if not results:
        print(f"\nno results: see {ws / 'logs' / 'pytest.log'}")
        print((ws / "logs" / "pytest.log").read_text(errors="replace")[-3000:])
    print(f"\nsdk (identity, image): {counts['success']} passed, {counts['fail']} failed, "
          f"{counts['skip']} skipped of {len(results)} in {elapsed:.1f} s")
    print(f"details: {ws / 'results.json'}, log: {ws / 'logs' / 'pytest.log'}")
    return 0 if results and counts["fail"] == 0 else 1
