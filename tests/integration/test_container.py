"""The container image: lint-clean Dockerfile, valid compose file, and a real build + run with podman.

Slow (a cold run debootstraps a Debian base and pip-installs into it); the base image stays in podman
storage, so later runs only rebuild changed layers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.config import load_config, parse_duration
from gateway.idp.config import load_idp_config
from tests.fixtures import podman
from tests.fixtures.browser import Browser

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/cognito-gateway:test"

pytestmark = pytest.mark.slow


def test_dockerfile_is_lint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        podman.require_tools("hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


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


@pytest.fixture(scope="module")
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


# --- docker-compose.yml: local Cognito + demo app + gateway; profile fleet: 2 gateways, Redis, nginx ---

COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "compose" / "nginx.conf"
DEFAULT_SERVICES = {"session-secret", "cognito", "demo", "gateway"}
FLEET_SERVICES = DEFAULT_SERVICES | {"redis", "gateway-1", "gateway-2", "nginx"}
PORT_VARIABLES = ("GATEWAY_PORT", "COGNITO_PORT", "FLEET_PORT")
DEFAULT_PORTS = {"GATEWAY_PORT": 8080, "COGNITO_PORT": 9000, "FLEET_PORT": 8090}
MOVED_PORTS = {"GATEWAY_PORT": 18080, "COGNITO_PORT": 19000, "FLEET_PORT": 18090}
# Secret-looking tokens: 32+ characters of base64/base64url/hex with at least one digit.
SECRET_LIKE = re.compile(r"(?<![A-Za-z0-9+/_=-])(?=[A-Za-z0-9+/_=-]*\d)[A-Za-z0-9+/_=-]{32,}")


def compose_config(profile: str | None, ports: dict[str, int] | None) -> dict[str, Any]:
    """`docker-compose config`: the file as the compose tool reads it, with this environment."""
    podman.require_tools("docker-compose")
    env = {key: value for key, value in os.environ.items() if key not in PORT_VARIABLES}
    env.update({key: str(value) for key, value in (ports or {}).items()})
    profile_args = ["--profile", profile] if profile else []
    result = podman.run(["docker-compose", "-f", str(COMPOSE_FILE), *profile_args, "config"], timeout=60, env=env)
    services = yaml.safe_load(result.stdout)["services"]
    # docker-compose v1 prints every service: keep those the profile starts, as `up` would.
    active = {name: s for name, s in services.items() if not s.get("profiles") or profile in s["profiles"]}
    for name, service in active.items():
        needs = set(service.get("depends_on", {})) | {service.get("network_mode", "")[len("service:") :]} - {""}
        assert needs <= set(active), f"{name} needs {needs - set(active)}, which profile {profile} does not start"
    return active


def published(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port), from the short or the long port syntax."""
    found = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            found[int(entry["target"])] = (entry.get("host_ip", ""), int(entry["published"]))
        else:
            host_ip, host_port, target = entry.split("/")[0].rsplit(":", 2)
            found[int(target)] = (host_ip, int(host_port))
    return found


def mounts(service: dict[str, Any]) -> list[str]:
    """`source:target:ro|rw` for each volume, from the short or the long syntax."""
    found = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            entry = f"{entry['source']}:{entry['target']}:{'ro' if entry.get('read_only') else 'rw'}"
        found.append(entry if entry.count(":") == 2 else f"{entry}:rw")
    return found


def in_repo(service: dict[str, Any], container_path: str) -> Path:
    """The repository file behind a path under /etc/gateway: config/ must be what is mounted there."""
    assert f"{ROOT / 'config'}:/etc/gateway:ro" in mounts(service)
    return ROOT / "config" / Path(container_path).relative_to("/etc/gateway")


def gateway_check(config_file: Path, env: dict[str, str]) -> None:
    """`python -m gateway check` with the environment the container gives the gateway."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "check", "--config", str(config_file)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={"PATH": os.environ.get("PATH", ""), **env},
    )  # fmt: skip
    assert result.returncode == 0, f"check {config_file.name} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
    assert result.stdout.rstrip().endswith(f"{config_file}: OK"), result.stdout[-500:]


@pytest.mark.parametrize("ports", [None, MOVED_PORTS], ids=["default-ports", "moved-ports"])
@pytest.mark.parametrize("profile", [None, "fleet"], ids=["default-profile", "fleet-profile"])
def test_compose_profiles_wire_the_issuer_callbacks_and_secret(
    profile: str | None, ports: dict[str, int] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose_config(profile, ports)
    want = {**DEFAULT_PORTS, **(ports or {})}
    assert set(services) == (FLEET_SERVICES if profile else DEFAULT_SERVICES)

    # The local Cognito owns the namespace; its issuer is 127.0.0.1:<port> inside and outside.
    cognito = services["cognito"]
    assert "network_mode" not in cognito
    cognito_env = {key: str(value) for key, value in cognito["environment"].items()}
    for key, value in cognito_env.items():
        monkeypatch.setenv(key, value)
    idp_command = cognito["command"]
    assert idp_command[:2] == ["idp", "--config"]
    idp = load_idp_config(in_repo(cognito, idp_command[2]))
    assert (idp.host, idp.port) == ("0.0.0.0", want["COGNITO_PORT"])
    assert idp.issuer_url == f"http://127.0.0.1:{want['COGNITO_PORT']}/{idp.user_pool_id}"
    assert published(cognito) == {
        8080: ("127.0.0.1", want["GATEWAY_PORT"]),
        want["COGNITO_PORT"]: ("127.0.0.1", want["COGNITO_PORT"]),
    }
    assert all("ports" not in s for name, s in services.items() if name not in ("cognito", "nginx")), "only the front is published"

    gateways = sorted(name for name in services if name.startswith("gateway"))
    assert gateways == (["gateway", "gateway-1", "gateway-2"] if profile else ["gateway"])
    listen_ports = {}
    for name in gateways:
        service = services[name]
        assert service["network_mode"] == "service:cognito", f"{name} must share the local Cognito's loopback"
        assert service["depends_on"]["cognito"]["condition"] == "service_healthy"
        assert service["depends_on"]["session-secret"]["condition"] == "service_completed_successfully"
        assert "gateway-secrets:/secrets:ro" in mounts(service)
        assert "/secrets/session_secret" in " ".join(service["entrypoint"])
        env = {key: str(value) for key, value in service["environment"].items()}
        assert not [key for key in env if "SECRET" in key], f"{name}: a secret in environment:"
        env["SESSION_SECRET"] = secrets.token_urlsafe(48)  # what session-secret writes
        config_file = in_repo(service, env["GATEWAY_CONFIG"])
        gateway_check(config_file, env)
        config = load_config(config_file, env=env)
        assert config.provider is not None and config.public_url is not None
        assert config.provider.issuer == idp.issuer_url, f"{name} fetches another issuer than the tokens name"
        client = idp.client(config.provider.client_id)
        assert client is not None, f"{name}: client {config.provider.client_id} is not in the local Cognito"
        assert f"{config.public_url}/oauth2/callback" in client.callback_urls
        assert f"{config.public_url}/" in client.logout_urls
        assert parse_duration(service["stop_grace_period"]) >= config.drain_delay + config.shutdown_grace
        listen_ports[name] = config.listen_port
        if name == "gateway":
            assert config.public_url == f"http://localhost:{want['GATEWAY_PORT']}"
            assert config.listen_port == 8080 and config.session.store.value == "cookie"
            assert config.upstreams[0].url == "http://demo:8000"
        else:
            assert config.public_url == f"http://localhost:{want['FLEET_PORT']}"
            assert config.session.store.value == "redis"
            assert urlsplit(config.session.redis_url).hostname == "redis" and "redis" in services

    if profile == "fleet":
        # nginx round-robins over exactly the two fleet gateways, reached by the namespace's name.
        assert len({listen_ports["gateway-1"], listen_ports["gateway-2"], listen_ports["gateway"]}) == 3
        nginx_conf = NGINX_CONF.read_text()
        servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)\s*;", nginx_conf, re.M)
        assert sorted(servers) == sorted(("cognito", str(listen_ports[g])) for g in ("gateway-1", "gateway-2"))
        listen = re.findall(r"^\s*listen\s+(\d+)\s*;", nginx_conf, re.M)
        assert published(services["nginx"]) == {int(listen[0]): ("127.0.0.1", want["FLEET_PORT"])}
        assert str(NGINX_CONF) in " ".join(map(str, services["nginx"]["volumes"]))


def test_compose_nginx_conf_is_valid(tmp_path: Path) -> None:
    """`nginx -t` on the fleet's nginx.conf; `cognito` (a compose service name) becomes a local address."""
    podman.require_tools("nginx")
    conf = tmp_path / "nginx.conf"
    text = NGINX_CONF.read_text()
    assert "server cognito:" in text
    conf.write_text(text.replace("server cognito:", "server 127.0.0.1:"))
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(conf), "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_compose_files_hold_no_secret() -> None:
    """The session secret is made at the first `up`; nothing secret-like is written in the files."""
    files = [COMPOSE_FILE, NGINX_CONF, *sorted((ROOT / "config").glob("compose*.yaml")), ROOT / "config" / "idp-compose.yaml"]
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # an identity pool's id names it, opens nothing
    for path in files:
        found = [value for value in SECRET_LIKE.findall(path.read_text()) if not uuid.fullmatch(value)]
        assert not found, f"{path.name}: secret-like literals {found}"
        text = path.read_text()
        if path.name.startswith("compose"):
            assert yaml.safe_load(text)["session"]["secrets"] == ["${SESSION_SECRET}"], f"{path.name}: secrets only from the environment"
    assert all(c.get("client_secret") is None for c in yaml.safe_load((ROOT / "config" / "idp-compose.yaml").read_text())["clients"])
    # the one-shot service writes a fresh random secret, 0400, owned by the gateways' uid
    service = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["session-secret"]
    script = service["entrypoint"][-1]
    assert "secrets.token_urlsafe(48)" in script and "0o400" in script and "10001" in script


def podman_compose() -> str:
    """podman-compose from the dev extra (next to this Python), else from PATH."""
    beside = Path(sys.executable).with_name("podman-compose")
    return str(beside) if beside.exists() else shutil.which("podman-compose") or "podman-compose"


@dataclass
class ComposeStack:
    ports: dict[str, int]  # GATEWAY_PORT, COGNITO_PORT, FLEET_PORT on the host
    project: str
    env: dict[str, str]  # podman's config files

    def healthcheck(self, service: str) -> subprocess.CompletedProcess[str]:
        container = f"{self.project}_{service}_1"
        return subprocess.run(["podman", "healthcheck", "run", container], capture_output=True, text=True, timeout=60, env=self.env)


@pytest.fixture
def compose_stack(gateway_image: str, tmp_path: Path) -> Iterator[ComposeStack]:
    """`podman-compose up` of the default profile on free host ports, with the image just built; `down -v` after."""
    podman.require_tools(podman_compose(), *map(str, podman.NETAVARK_PROGRAMS))
    env = podman.compose_env(tmp_path)
    problem = podman.bridge_network_problem(gateway_image, env)
    if problem:
        # Not a missing package (those fail under CI above): this machine refuses bridge networking.
        pytest.skip(f"podman cannot run a bridge network here: {problem}")
    ports = {key: podman.free_port() for key in PORT_VARIABLES}
    env.update({key: str(port) for key, port in ports.items()})
    # The compose file builds `cognito-gateway:latest`; here every service of that image runs the one built above.
    declared = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    override = tmp_path / "compose.override.yml"
    override.write_text(yaml.safe_dump({"services": {name: {"image": gateway_image} for name, s in declared.items() if "build" in s}}))
    project = f"gwc{uuid.uuid4().hex[:8]}"
    compose = [podman_compose(), "--project-name", project, "-f", str(COMPOSE_FILE), "-f", str(override)]
    try:
        started = time.monotonic()
        podman.run([*compose, "up", "-d", "--no-build"], timeout=240, env=env, cwd=ROOT)
        print(f"\ncompose up in {time.monotonic() - started:.1f}s")
        yield ComposeStack(ports, project, env)
    finally:
        logs = subprocess.run([*compose, "logs", "--no-color"], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
        print(logs.stdout[-6000:], logs.stderr[-2000:])
        subprocess.run([*compose, "down", "-v", "-t", "3"], capture_output=True, timeout=120, env=env, cwd=ROOT)
        # Whatever `down` left (a container, the network, the secret's volume) goes too.
        label = f"label=io.podman.compose.project={project}"
        left = subprocess.run(["podman", "ps", "-aq", "--filter", label], capture_output=True, text=True, timeout=60, env=env)
        for container in left.stdout.split():
            subprocess.run(["podman", "rm", "-f", "-t", "0", container], capture_output=True, timeout=60, env=env)
        subprocess.run(["podman", "network", "rm", "-f", f"{project}_default"], capture_output=True, timeout=60, env=env)
        subprocess.run(["podman", "volume", "rm", "-f", f"{project}_gateway-secrets"], capture_output=True, timeout=60, env=env)
        subprocess.run(["podman", "pod", "rm", "-f", f"pod_{project}"], capture_output=True, timeout=60, env=env)


@pytest.mark.timeout(1800)
async def test_compose_up_signs_alice_in_through_the_local_cognito(compose_stack: ComposeStack, browser: Browser) -> None:
    """The default profile, for real: the Hosted UI on the published port, tokens from the same issuer, the app sees alice."""
    ports = compose_stack.ports
    gateway_url = f"http://localhost:{ports['GATEWAY_PORT']}"
    hosted_ui = f"http://127.0.0.1:{ports['COGNITO_PORT']}"
    try:
        # ready = the gateway loaded discovery and JWKS from http://127.0.0.1:<port>, over its own loopback
        await asyncio.to_thread(podman.wait_http, f"http://127.0.0.1:{ports['GATEWAY_PORT']}/readyz", 90)
    except TimeoutError as exc:
        pytest.fail(str(exc))
    # The healthchecks that `depends_on: service_healthy` waits for pass (podman runs them on demand
    # here: its timers need systemd), and the gateway's, inherited from the image, too.
    for service in ("cognito", "demo", "gateway"):
        result = await asyncio.to_thread(compose_stack.healthcheck, service)
        assert result.returncode == 0, f"{service} healthcheck: {result.stdout}{result.stderr}"

    page = await browser.sign_in(f"{gateway_url}/?from=compose", username="alice")
    assert page.status == 200, page.text[:500]
    assert page.url == f"{gateway_url}/?from=compose"
    # the form was the Hosted UI's, on the published port; its code came back to the gateway's callback
    assert page.history[0].startswith(f"{hosted_ui}/login?"), page.history
    assert any(url.startswith(f"{gateway_url}/oauth2/callback?code=") for url in page.history), page.history
    assert "Signed in as <strong>alice</strong> (alice@example.com)" in page.text

    whoami = await browser.open(f"{gateway_url}/api/whoami")
    identity = {key.lower(): value for key, value in json.loads(whoami.text)["identity"].items()}
    assert identity["x-forwarded-user"] == "alice"
    assert identity["x-forwarded-email"] == "alice@example.com"
    assert identity["x-forwarded-groups"] == "admins"

    # Sign-out goes through the Hosted UI's /logout (the compose URL is a registered sign-out URL) and back.
    signed_out = await browser.open(f"{gateway_url}/oauth2/sign_out", from_page=f"{gateway_url}/")
    assert any(url.startswith(f"{hosted_ui}/logout") for url in signed_out.history), signed_out.history
    assert signed_out.status == 200 and "password" in signed_out.text, f"{signed_out.status} at {signed_out.url}"
