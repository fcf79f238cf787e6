"""The container image: lint-clean Dockerfile, valid compose file, and a real build + run with podman.

Slow (a cold run debootstraps a Debian base and pip-installs into it); the base image stays in podman
storage, so later runs only rebuild changed layers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.fixtures import podman

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/cognito-gateway:test"

pytestmark = pytest.mark.slow


def test_dockerfile_is_lint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        podman.require_tools("hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_compose_file_is_valid() -> None:
    podman.require_tools("docker-compose")
    result = podman.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"], timeout=60)
    services = yaml.safe_load(result.stdout)["services"]
    assert services["gateway"]["environment"]["UPSTREAM_URL"] == "http://demo:8000"
    assert services["gateway"]["environment"]["GATEWAY_LISTEN"] == "0.0.0.0:8080"
    assert services["demo"]["entrypoint"] == ["python", "-m", "gateway.demo"]


@pytest.fixture
def demo_upstream() -> Iterator[str]:
    """The demo app on the host's loopback; the container reaches it through --network host."""
    port = podman.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.demo", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        podman.wait_http(f"http://127.0.0.1:{port}/api/whoami", timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def gateway_image() -> str:
    podman.require_tools("podman", "runc", "debootstrap", "tar")
    started = time.monotonic()
    podman.ensure_base_image()
    print(f"\nbase image ready in {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    podman.build_image(ROOT, IMAGE, base=podman.BASE_IMAGE)
    print(f"image built in {time.monotonic() - started:.1f}s")
    return IMAGE


@pytest.mark.timeout(1800)
def test_image_proxies_and_reports_healthy(gateway_image: str, demo_upstream: str, tmp_path: Path) -> None:
    name = f"gw-test-{uuid.uuid4().hex[:8]}"
    port = podman.free_port()
    env = {"GATEWAY_LISTEN": f"127.0.0.1:{port}", "UPSTREAM_URL": demo_upstream}
    args = ["run", "--config", "/etc/gateway/demo-noauth.yaml"]
    try:
        podman.run_container(name, gateway_image, env, args, podman.containers_conf(tmp_path))
        try:
            podman.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        except TimeoutError as exc:
            pytest.fail(f"{exc}\ncontainer logs:\n{podman.container_logs(name)}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/whoami", timeout=10) as response:
            assert response.status == 200
            body = json.load(response)
        received = {key.lower(): value for key, value in body["headers"]}
        assert received["x-forwarded-for"] == "127.0.0.1"
        assert body["path"] == "/api/whoami"
        _assert_healthcheck(name)
    finally:
        podman.remove_container(name)


def _assert_healthcheck(name: str) -> None:
    """The image's own HEALTHCHECK (python, no curl) passes against the port given in GATEWAY_LISTEN."""
    inspected = podman.run([*podman.PODMAN, "inspect", "--format", "{{json .Config.Healthcheck}}", name])
    assert "/healthz" in inspected.stdout
    result = subprocess.run([*podman.PODMAN, "healthcheck", "run", name], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"healthcheck failed: {result.stdout}{result.stderr}"
