"""deploy/: the Kubernetes example and the Cognito CloudFormation stack, checked offline.

Kubernetes manifests are validated against the OpenAPI schemas `kubernetes-validate` ships (strict:
an unknown field is an error), for the oldest version the example supports (native sidecars, 1.29)
and the newest the package knows. The CloudFormation template goes through `cfn-lint`, which ships
the resource specs of every region. What neither schema can say is asserted here: the probes, the
drain arithmetic, what the Service reaches, where secrets come from, and that the configs pass
`python -m gateway check` with the environment they would get. Commands that could reach a network
run in a fresh network namespace when the machine allows it (`unshare -n`), to show they need none.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cfnlint.decode import decode
from kubernetes_validate.utils import ValidationError, latest_version

from gateway.auth.login import SignIn
from gateway.config import Config, parse_config
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
COGNITO = ROOT / "deploy" / "cognito"
TEMPLATE = COGNITO / "template.yaml"
OLDEST_KUBERNETES = "1.29"  # restartPolicy: Always on an init container (native sidecars) is on by default from 1.29


# --- helpers -------------------------------------------------------------------------------------


@functools.cache
def offline_prefix() -> tuple[str, ...]:
    """`unshare -n` when this machine lets us make a network namespace (root), else nothing."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=10).returncode == 0:
        return (unshare, "-n")
    return ()


CFN_LINT = (sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())")  # as its console script does


def run_offline(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*offline_prefix(), *command], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)


def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every Kubernetes manifest of deploy/kubernetes/, by file name (kustomization.yaml is not one)."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found[path.name] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def the(kind: str, file: str | None = None) -> dict[str, Any]:
    """The one resource of this kind (in this file)."""
    matches = [doc for name, docs in manifests().items() if file in (None, name) for doc in docs if doc["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def pod_spec() -> dict[str, Any]:
    return the("Deployment")["spec"]["template"]["spec"]


def container(name: str) -> dict[str, Any]:
    spec = pod_spec()
    everyone = spec["containers"] + spec.get("initContainers", [])
    return next(c for c in everyone if c["name"] == name)


def port_number(c: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in c.get("ports", []) if p.get("name") == port)


def pod_env(secret_values: dict[str, str]) -> dict[str, str]:
    """The gateway container's environment, with each secretKeyRef read from `secret_values` (by key)."""
    env = {"PATH": os.environ["PATH"]}
    for var in container("gateway").get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == the("Secret")["metadata"]["name"]
            env[var["name"]] = secret_values[ref["key"]]
    return env


def made_up_secrets() -> dict[str, str]:
    """A value for each key of the Secret, made now (a secret written in the repository is refused)."""
    return {key: secrets.token_urlsafe(32) for key in the("Secret")["stringData"]}


def configmap_config_file(tmp_path: Path) -> Path:
    """The ConfigMap's gateway.yaml, where the Deployment mounts it, relative to tmp_path."""
    mount = next(m for m in container("gateway")["volumeMounts"] if m["name"] == "config")
    path = tmp_path / mount["mountPath"].lstrip("/") / "gateway.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(the("ConfigMap")["data"]["gateway.yaml"])
    return path


def configmap_config(env: dict[str, str]) -> Config:
    return parse_config(yaml.safe_load(the("ConfigMap")["data"]["gateway.yaml"]), env)


def gateway_check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_offline(sys.executable, "-m", "gateway", "check", "--config", str(config), env={**env, "PYTHONPATH": str(ROOT)})


# --- Kubernetes: schemas -------------------------------------------------------------------------


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, latest_version()])
def test_every_manifest_matches_the_kubernetes_schemas(version):
    checked = []
    for name, docs in manifests().items():
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
            checked.append(f"{name}:{doc['kind']}")
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"} <= {c.split(":")[1] for c in checked}


def test_the_validator_refuses_what_kubernetes_would():
    """The schemas are really there and strict: a misspelt field and a wrongly typed one are refused."""
    deployment = the("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}}
    with pytest.raises(ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(deployment, latest_version(), strict=True)
    service = the("Service")
    service["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(service, latest_version(), strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secret():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)) and all((K8S / name).is_file() for name in listed)
    # An apply must never put placeholders back over the Secret created with kubectl.
    assert set(listed) == set(manifests()) - {"secret.example.yaml"}


# --- Kubernetes: the pod -------------------------------------------------------------------------


def test_probes_ask_the_gateway_port_and_nothing_stops_before_the_drain():
    gateway = container("gateway")
    listen_port = configmap_config(pod_env(made_up_secrets())).listen_port
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert gateway[probe]["httpGet"]["path"] == path
        assert port_number(gateway, gateway[probe]["httpGet"]["port"]) == listen_port
    # /readyz gives its checks 1 s (gateway/ops/health.py): the probe must wait longer than that.
    assert gateway["readinessProbe"]["timeoutSeconds"] > 1
    spec = pod_spec()
    for c in spec["containers"] + spec.get("initContainers", []):
        assert "preStop" not in c.get("lifecycle", {}), f"{c['name']}: draining is the gateway's drain_delay, not a preStop hook"


def test_drain_fits_in_the_termination_grace_period():
    config = configmap_config(pod_env(made_up_secrets()))
    grace_period = pod_spec()["terminationGracePeriodSeconds"]
    assert config.drain_delay + config.shutdown_grace < grace_period
    # Whatever polls /readyz as the readiness probe does sees the 503 before the listener closes.
    readiness = container("gateway")["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < config.drain_delay
    # The comment that states the arithmetic says these very numbers.
    drain, shutdown = int(config.drain_delay), int(config.shutdown_grace)
    stated = f"drain_delay + shutdown_grace = {drain} + {shutdown} = {drain + shutdown} s < terminationGracePeriodSeconds = {grace_period} s"
    assert stated in (K8S / "deployment.yaml").read_text()


def test_the_app_is_a_native_sidecar_on_loopback_behind_the_gateway():
    spec = pod_spec()
    app = container("app")
    assert app in spec["initContainers"] and app["restartPolicy"] == "Always"  # starts first, stops after the gateway
    assert "startupProbe" in app  # the gateway starts only once the app answers
    assert "ports" not in app
    command = app.get("command", []) + app.get("args", [])
    host, port = command[command.index("--host") + 1], command[command.index("--port") + 1]
    assert host == "127.0.0.1"
    upstream = configmap_config(pod_env(made_up_secrets())).upstreams[0].url
    assert upstream == f"http://127.0.0.1:{port}"
    assert [c["name"] for c in spec["containers"]] == ["gateway"]


def test_the_service_reaches_only_the_gateway_port():
    service = the("Service")
    pod_labels = the("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    gateway = container("gateway")
    listen_port = configmap_config(pod_env(made_up_secrets())).listen_port
    targets = [port_number(gateway, p["targetPort"]) for p in service["spec"]["ports"]]
    assert targets == [listen_port]


def test_secrets_come_from_the_secret_and_reach_the_config():
    values = made_up_secrets()
    config = configmap_config(pod_env(values))
    assert config.session.secrets == (values["session-secret"],)
    assert config.provider is not None and config.provider.client_secret == values["client-secret"]
    # Nothing secret is written in the ConfigMap or in the Deployment: only ${VAR} references and secretKeyRefs.
    raw = yaml.safe_load(the("ConfigMap")["data"]["gateway.yaml"])
    assert raw["provider"]["client_secret"] == "${COGNITO_CLIENT_SECRET}" and raw["session"]["secrets"] == ["${SESSION_SECRET}"]
    for var in container("gateway")["env"]:
        if "SECRET" in var["name"]:
            assert "value" not in var and "secretKeyRef" in var["valueFrom"], var["name"]


def test_every_container_is_locked_down_and_sized():
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    for c in spec["containers"] + spec["initContainers"]:
        context = c["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, c["name"]
        assert context["readOnlyRootFilesystem"] is True, c["name"]
        assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"], c["name"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][bound]), f"{c['name']}: resources.{bound}"


def test_the_configmap_config_passes_check_with_the_pods_environment(tmp_path):
    values = made_up_secrets()
    config_file = configmap_config_file(tmp_path)
    args = container("gateway")["args"]
    assert args[args.index("--config") + 1] == "/" + str(config_file.relative_to(tmp_path))
    result = gateway_check(config_file, pod_env(values))
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith(": OK") and "warning:" not in result.stdout + result.stderr
    # The Cognito shorthand derives every endpoint without asking anyone: nothing to reach offline.
    assert "issuer: https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123" in result.stdout
    assert "not resolved" not in result.stdout
    assert not any(value in result.stdout + result.stderr for value in values.values())


def test_the_example_secret_is_refused_by_check(tmp_path):
    """secret.example.yaml's placeholders cannot go live by mistake: the gateway refuses to start with them."""
    result = gateway_check(configmap_config_file(tmp_path), pod_env(the("Secret")["stringData"]))
    assert result.returncode == 1
    assert "session.secrets[0]" in result.stderr


# --- Cognito: the CloudFormation stack -----------------------------------------------------------


@functools.cache
def template() -> dict[str, Any]:
    decoded, problems = decode(str(TEMPLATE))
    assert not problems and decoded is not None, problems
    return decoded


def evaluate(value: Any, names: dict[str, str]) -> Any:
    """Ref and Fn::Sub (the only intrinsics the client and outputs use), with `names` for refs."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return names[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        assert isinstance(value["Fn::Sub"], str)
        return re.sub(r"\$\{([^}!]+)\}", lambda m: names[m.group(1)], value["Fn::Sub"])
    if isinstance(value, list):
        return [evaluate(item, names) for item in value]
    assert not isinstance(value, dict), value
    return value


def stack_names(public_url: str) -> dict[str, str]:
    """What CloudFormation would resolve: parameters, pseudo parameters and the resources' ids."""
    return {
        "PublicUrl": public_url, "DomainPrefix": "my-app", "AWS::Region": "eu-west-1", "AWS::StackName": "cognito-gateway",
        "UserPool": "eu-west-1_AbCdEf123", "GatewayClient": "1example23456789abcdefghij",
    }  # fmt: skip


def output_env(names: dict[str, str]) -> dict[str, str]:
    """Each output under its name in UPPER_SNAKE_CASE, as deploy/cognito/gateway.yaml reads them."""
    outputs = template()["Outputs"]
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).upper(): evaluate(out["Value"], names) for key, out in outputs.items()}


def test_the_template_passes_cfn_lint():
    result = run_offline(
        *CFN_LINT, "--include-checks", "I", "--non-zero-exit-code", "informational",
        "--regions", "us-east-1", "eu-west-1", "ap-southeast-2", "--", str(TEMPLATE),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_cfn_lint_refuses_an_implicit_flow_misspelt(tmp_path):
    """cfn-lint checks properties against the shipped specs (it is not just a YAML parser)."""
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("AllowedOAuthFlows: [code]", "AllowedOAuthFlows: [code, implict]"))
    result = run_offline(*CFN_LINT, "--", str(broken))
    assert result.returncode != 0 and "implict" in result.stdout


def test_the_client_allows_the_code_flow_only_with_a_secret():
    client = template()["Resources"]["GatewayClient"]["Properties"]
    assert client["AllowedOAuthFlows"] == ["code"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True and client["GenerateSecret"] is True
    assert set(client["AllowedOAuthScopes"]) == {"openid", "email", "profile"}
    assert client["EnableTokenRevocation"] is True  # sign-out revokes the refresh token
    # Outputs are readable by anyone allowed to describe the stack: the secret is fetched by a command instead.
    assert "GetAtt" not in str(template()["Outputs"])


@pytest.mark.parametrize("public_url", ["https://app.example.com", "https://app.example.com:8443", "http://localhost:8080"])
def test_callback_and_sign_out_urls_are_the_ones_the_gateway_sends(public_url):
    names = stack_names(public_url)
    assert re.fullmatch(template()["Parameters"]["PublicUrl"]["AllowedPattern"], public_url)
    config = parse_config(yaml.safe_load((COGNITO / "gateway.yaml").read_text()), {**output_env(names), "SESSION_SECRET": secrets.token_urlsafe(32), "COGNITO_CLIENT_SECRET": "x"})
    assert config.sign_in is not None
    client = template()["Resources"]["GatewayClient"]["Properties"]
    gateway_callback = SignIn(config.sign_in, None, None, None, None, None, None).redirect_uri  # type: ignore[arg-type]
    assert evaluate(client["CallbackURLs"], names) == [gateway_callback]
    assert evaluate(client["LogoutURLs"], names) == [f"{config.public_url}/"]  # the logout_uri of /oauth2/sign_out


@pytest.mark.parametrize("bad", ["https://app.example.com/", "https://app.example.com/app", "http://app.example.com", "app.example.com"])
def test_public_url_parameter_refuses_what_would_not_match(bad):
    assert not re.fullmatch(template()["Parameters"]["PublicUrl"]["AllowedPattern"], bad)


def test_the_outputs_fill_the_gateway_config_and_it_passes_check(tmp_path):
    names = stack_names("https://app.example.com")
    env = output_env(names)
    assert set(env) >= {"COGNITO_REGION", "COGNITO_USER_POOL_ID", "COGNITO_DOMAIN", "COGNITO_CLIENT_ID", "PUBLIC_URL"}
    client_secret, session_secret = secrets.token_urlsafe(40), secrets.token_urlsafe(32)
    full_env = {"PATH": os.environ["PATH"], **env, "COGNITO_CLIENT_SECRET": client_secret, "SESSION_SECRET": session_secret}
    config = parse_config(yaml.safe_load((COGNITO / "gateway.yaml").read_text()), full_env)
    assert config.provider is not None and config.provider.cognito is not None
    cognito = config.provider.cognito
    assert (cognito.region, cognito.user_pool_id, config.provider.client_id) == ("eu-west-1", "eu-west-1_AbCdEf123", "1example23456789abcdefghij")
    assert cognito.domain == "https://my-app.auth.eu-west-1.amazoncognito.com"
    # Each output says which config key it fills.
    descriptions = {key: out["Description"] for key, out in template()["Outputs"].items()}
    for key, config_key in {"CognitoRegion": "provider.cognito.region", "CognitoUserPoolId": "provider.cognito.user_pool_id",
                            "CognitoDomain": "provider.cognito.domain", "CognitoClientId": "provider.client_id",
                            "PublicUrl": "public_url"}.items():  # fmt: skip
        assert descriptions[key].startswith(config_key)
    # The command printed for the secret names this pool and client.
    assert env["CLIENT_SECRET_COMMAND"].startswith("aws cognito-idp describe-user-pool-client --region eu-west-1 ")
    assert "--user-pool-id eu-west-1_AbCdEf123 --client-id 1example23456789abcdefghij" in env["CLIENT_SECRET_COMMAND"]
    result = gateway_check(COGNITO / "gateway.yaml", full_env)
    assert result.returncode == 0, result.stderr
    assert "warning:" not in result.stdout + result.stderr
    assert "authorize: https://my-app.auth.eu-west-1.amazoncognito.com/oauth2/authorize" in result.stdout
    assert client_secret not in result.stdout and session_secret not in result.stdout


def test_the_gateway_config_refuses_a_missing_client_secret():
    """The app client has a secret: forgetting it must be an error, not a silent public client."""
    names = stack_names("https://app.example.com")
    with pytest.raises(ConfigError, match="COGNITO_CLIENT_SECRET"):
        parse_config(yaml.safe_load((COGNITO / "gateway.yaml").read_text()), {**output_env(names), "SESSION_SECRET": secrets.token_urlsafe(32)})
