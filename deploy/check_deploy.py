"""Consistency checks of deploy/: what a schema checker cannot see. Run by ci/deploy-checks.sh.

    .venv/bin/python deploy/check_deploy.py        (the project installed in the venv: it imports archiver)

The schema checker (kubernetes-validate) says each manifest is a valid Kubernetes object, and
promtool that the rules parse and behave; neither knows the archiver. This script checks that the
pieces agree with the code and with each other:

- every ConfigMap variable and every Secret key is a real setting, and reaches its field: the
  settings are loaded by ``archiver.config.load_settings`` from the ConfigMap's environment and a
  secrets directory laid out as the kubelet mounts a Secret (``..data`` symlinks), so an unknown
  name, a key the archiver would silently ignore, or a bad value fails here;
- the Deployment points at that ConfigMap, Secret and secrets directory; its ports, probes and
  Prometheus annotations name the metrics port of ``SMS_ARCHIVER_METRICS__LISTEN``; its user is the
  Dockerfile's; its grace period outlasts ``SMS_ARCHIVER_DAEMON__SHUTDOWN_SECONDS``; the Service
  selects its pods;
- kustomization.yaml lists every manifest, and only existing ones;
- alerts.yml's interval and TTL constants are the ConfigMap's schedule and lease TTL;
- every ``sms_archiver_*`` name in the alert rules and the Grafana dashboard is a series the
  archiver exposes (``archiver.metrics.Metrics``'s registry, with ``_total``, ``_bucket``...), and
  the dashboard is a sound JSON model (unique panel ids, the datasource variable everywhere).

Exit status 0 when all hold; 1 with one line per problem otherwise.

``--dashboard-rules PATH`` writes the dashboard's queries as a Prometheus rule file (Grafana's
variables replaced by plain values), so that ``promtool check rules PATH`` parses their PromQL.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "sms-archiver.json"
METRIC_NAME = re.compile(r"\bsms_archiver_[a-z0-9_]+")

problems: list[str] = []


def problem(text: str) -> None:
    problems.append(text)
    print(f"FAIL  {text}")


def ok(text: str) -> None:
    print(f"ok    {text}")


# -- the manifests ---------------------------------------------------------------------------------


def load_manifests() -> dict[str, dict[str, Any]]:
    """Every object of deploy/kubernetes by kind (one object of each kind is what the example has)."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                if document["kind"] in objects:
                    problem(f"{path.name}: a second {document['kind']}: this check expects one of each")
                objects[document["kind"]] = document
    return objects


def check_kustomization() -> None:
    """Every manifest is listed, but no *.example.yaml: applying again must not overwrite real secrets."""
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization.get("resources", []))
    present = {path.name for path in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    examples = {name for name in present if name.endswith(".example.yaml")}
    for name in sorted(listed - present):
        problem(f"kustomization.yaml lists {name}, which does not exist")
    for name in sorted(listed & examples):
        problem(f"kustomization.yaml lists {name}: applying it again would overwrite the real values")
    for name in sorted(present - examples - listed):
        problem(f"kustomization.yaml does not list {name}")
    if listed == present - examples:
        ok(f"kustomization.yaml lists the {len(listed)} manifests, not the examples ({', '.join(sorted(examples))})")


def _kubelet_secret_dir(directory: Path, data: dict[str, str]) -> None:
    """Lay out a Secret volume as the kubelet does: files are symlinks through ``..data``."""
    stamp = directory / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir()
    for name, value in data.items():
        (stamp / name).write_text(value + "\n", encoding="utf-8")
    (directory / "..data").symlink_to(stamp.name)
    for name in data:
        (directory / name).symlink_to(Path("..data") / name)


def check_settings(configmap: dict[str, Any], secret: dict[str, Any], secrets_dir_env: str) -> Any:
    """Load the settings the pods would get; return them (None when they do not load)."""
    from archiver.config import load_settings
    from archiver.errors import ConfigError

    environment = {name: str(value) for name, value in configmap["data"].items()}
    # Distinct values, so that a key landing in the wrong field is seen too.
    secret_data = {name: f"example-{name}" for name in secret["stringData"]}
    for name in list(os.environ):
        if name.upper().startswith("SMS_ARCHIVER_") or name == "CREDENTIALS_DIRECTORY":
            del os.environ[name]
    with tempfile.TemporaryDirectory() as scratch:
        _kubelet_secret_dir(Path(scratch), secret_data)
        os.environ.update(environment)
        os.environ["SMS_ARCHIVER_SECRETS_DIR"] = scratch
        try:
            settings = load_settings()
        except ConfigError as error:
            problem(f"the ConfigMap and Secret do not load: {error}")
            return None
        finally:
            for name in [*environment, "SMS_ARCHIVER_SECRETS_DIR"]:
                os.environ.pop(name, None)
    ok(f"configmap.yaml: {len(environment)} settings load (load_settings)")
    for key, value in secret_data.items():
        section, _, field = key.partition("__")
        got = getattr(getattr(settings, section, None), field, None)
        got = got.get_secret_value() if hasattr(got, "get_secret_value") else got
        if got != value:
            problem(f"secret key {key} does not reach the setting {section}.{field} (a name the archiver ignores?)")
    ok(f"secret.example.yaml: its {len(secret_data)} keys reach their settings from a kubelet-style secrets dir")
    if secrets_dir_env == "":
        problem("deployment.yaml does not set SMS_ARCHIVER_SECRETS_DIR")
    return settings


def check_deployment(objects: dict[str, dict[str, Any]], settings: Any) -> None:
    from archiver.metrics import parse_listen

    deployment, service = objects["Deployment"], objects["Service"]
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    env = {item["name"]: item.get("value") for item in container.get("env", [])}
    mounts = {mount["name"]: mount["mountPath"] for mount in container.get("volumeMounts", [])}
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    checks: list[tuple[bool, str]] = []

    secret_volumes = [name for name, volume in volumes.items() if "secret" in volume]
    checks.append((len(secret_volumes) == 1, "one secret volume"))
    if secret_volumes:
        volume = volumes[secret_volumes[0]]
        checks.append(
            (volume["secret"]["secretName"] == objects["Secret"]["metadata"]["name"], "the volume mounts the Secret")
        )
        checks.append((mounts.get(secret_volumes[0]) == env.get("SMS_ARCHIVER_SECRETS_DIR"), "SECRETS_DIR = mount"))
        mode = volume["secret"].get("defaultMode", 0o644)
        group_readable = mode & 0o040 and spec["securityContext"].get("fsGroup") is not None
        checks.append((not mode & 0o007 and bool(group_readable), "secret files 0440 with fsGroup, not world-readable"))
    refs = [item["configMapRef"]["name"] for item in container.get("envFrom", []) if "configMapRef" in item]
    checks.append((refs == [objects["ConfigMap"]["metadata"]["name"]], "envFrom the ConfigMap"))

    host, port = parse_listen(settings.metrics.listen)
    every_address = ("0.0.0.0", "::")  # noqa: S104 - inside the pod, as the probes and Prometheus need
    checks.append((host in every_address, "METRICS__LISTEN on every address of the pod (probes reach the pod IP)"))
    ports = {item["name"]: item["containerPort"] for item in container["ports"]}
    checks.append((ports.get("metrics") == port, f"containerPort metrics = {port}"))
    annotations = pod["metadata"].get("annotations", {})
    checks.append((annotations.get("prometheus.io/scrape") == "true", "prometheus.io/scrape"))
    checks.append((annotations.get("prometheus.io/port") == str(port), "prometheus.io/port = metrics port"))
    checks.append((annotations.get("prometheus.io/path") == "/metrics", "prometheus.io/path = /metrics"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = container.get(probe, {}).get("httpGet", {})
        checks.append((http.get("path") == "/healthz" and http.get("port") in ("metrics", port), f"{probe} /healthz"))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    shutdown = settings.daemon.shutdown_seconds
    checks.append((grace >= shutdown + 15, f"terminationGracePeriodSeconds {grace} > SHUTDOWN_SECONDS {shutdown}"))

    dockerfile_user = re.search(r"^USER\s+(\d+)", (ROOT / "Dockerfile").read_text(encoding="utf-8"), re.MULTILINE)
    checks.append(
        (
            dockerfile_user is not None and spec["securityContext"].get("runAsUser") == int(dockerfile_user[1]),
            "runAsUser = the Dockerfile's USER",
        )
    )
    security = container["securityContext"]
    checks.append(
        (
            security.get("readOnlyRootFilesystem") is True
            and security.get("allowPrivilegeEscalation") is False
            and security.get("capabilities", {}).get("drop") == ["ALL"]
            and spec["securityContext"].get("runAsNonRoot") is True
            and spec["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault",
            "restricted security context",
        )
    )
    tmp = "/tmp"  # noqa: S108 - a path inside the pod, not used here
    checks.append((tmp in mounts.values(), "a writable /tmp (export downloads spill there)"))
    limits = container["resources"].get("limits", {})
    checks.append(("memory" in limits and "memory" in container["resources"].get("requests", {}), "memory sized"))

    labels = pod["metadata"]["labels"]
    selector = service["spec"]["selector"]
    checks.append((all(labels.get(key) == value for key, value in selector.items()), "the Service selects the pods"))
    service_ports = {item["name"]: item for item in service["spec"]["ports"]}
    checks.append((service_ports.get("metrics", {}).get("targetPort") in ("metrics", port), "Service → metrics port"))
    match = deployment["spec"]["selector"]["matchLabels"]
    checks.append((all(labels.get(key) == value for key, value in match.items()), "the Deployment selects its pods"))

    for passed, what in checks:
        if passed:
            ok(f"deployment.yaml: {what}")
        else:
            problem(f"deployment.yaml: {what}: does not hold")


def check_alert_constants(settings: Any) -> None:
    from archiver.schedule import parse_schedule

    trigger = parse_schedule(settings.schedule.archive)
    interval = getattr(trigger, "interval", None)
    if interval is None:
        problem("SMS_ARCHIVER_SCHEDULE__ARCHIVE is a cron line: alerts.yml assumes an interval")
        return
    seconds, ttl = int(interval.total_seconds()), settings.lease.ttl_seconds
    text = ALERTS.read_text(encoding="utf-8")
    expected = {
        f"> 2 * {seconds}": "two archive intervals",
        f"> {ttl} + {seconds}": "lease TTL + one interval",
        f"ARCHIVE_INTERVAL = {seconds} s": "the documented interval",
        f"LEASE_TTL        = {ttl} s": "the documented TTL",
    }
    for needle, what in expected.items():
        if needle in text:
            ok(f"alerts.yml: {what} ({needle!r}) matches configmap.yaml")
        else:
            problem(f"alerts.yml: {what}: expected {needle!r} from configmap.yaml's settings")


# -- metric names ----------------------------------------------------------------------------------


def exposed_series() -> tuple[set[str], set[str]]:
    """(every series name the archiver can expose, every metric family name)."""
    from archiver.metrics import Metrics

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    names, families = set(), set()
    for family in Metrics(max_age_seconds=60).registry.collect():
        families.add(family.name)
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names, families


def check_names(where: str, expressions: list[str], exposed: set[str]) -> set[str]:
    used: set[str] = set()
    for expression in expressions:
        for name in METRIC_NAME.findall(expression):
            used.add(name)
            if name not in exposed:
                problem(f"{where}: {name} is not a series the archiver exposes (in: {expression.strip()[:100]})")
    return used


def alert_expressions() -> Iterator[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule["alert"], rule["expr"]


def check_dashboard(exposed: set[str], families: set[str]) -> None:
    model = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {item["name"]: item for item in model.get("templating", {}).get("list", [])}
    datasource = variables.get("datasource", {})
    if datasource.get("type") == "datasource" and datasource.get("query") == "prometheus":
        ok("dashboard: a Prometheus datasource variable")
    else:
        problem("dashboard: no `datasource` variable of type datasource/prometheus")
    ids: set[int] = set()
    expressions: list[str] = []
    for panel in model["panels"]:
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            problem(f"dashboard: panel id {panel.get('id')} used twice")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(key), int) for key in ("x", "y", "w", "h")) or grid["x"] + grid["w"] > 24:
            problem(f"dashboard: panel {title!r} has no valid gridPos")
        targets = panel.get("targets", [])
        if not targets:
            problem(f"dashboard: panel {title!r} has no query")
        refs = [target.get("refId") for target in targets]
        if len(set(refs)) != len(refs) or None in refs:
            problem(f"dashboard: panel {title!r} has missing or repeated refIds")
        for item in (panel, *targets):
            if item.get("datasource", {}).get("uid") != "${datasource}":
                problem(f"dashboard: panel {title!r} does not use the datasource variable")
        for target in targets:
            if not METRIC_NAME.search(target.get("expr", "")):
                problem(f"dashboard: panel {title!r} has a query on no sms_archiver_ metric")
            expressions.append(target.get("expr", ""))
    used = check_names("dashboard", expressions, exposed)
    ok(f"dashboard: {len(model['panels'])} panels, {len(expressions)} queries, {len(used)} series names checked")
    unused = sorted(family for family in families if not any(name.startswith(family) for name in used))
    if unused:
        # Not a failure: a new metric may come before its panel. Said, so that it is not forgotten.
        print(f"note  dashboard: no panel shows {', '.join(unused)}")


GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1d", "$service": ".*", "$direction": ".*"}


def write_dashboard_rules(path: Path) -> None:
    """Every dashboard query as a recording rule: promtool parses rule files, not dashboards."""
    model = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    rules = []
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            expression = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expression = expression.replace(variable, value)
            if "$" in expression:
                problem(f"dashboard: panel {panel['title']!r} uses a variable this check does not know: {expression}")
            rules.append({"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": expression})
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    ok(f"dashboard: {len(rules)} queries written to {path} for promtool")


def main() -> int:
    if sys.argv[1:2] == ["--dashboard-rules"] and len(sys.argv) == 3:
        write_dashboard_rules(Path(sys.argv[2]))
        return 1 if problems else 0
    objects = load_manifests()
    check_kustomization()
    deployment_env = {
        item["name"]: item.get("value", "")
        for item in objects["Deployment"]["spec"]["template"]["spec"]["containers"][0].get("env", [])
    }
    settings = check_settings(
        objects["ConfigMap"], objects["Secret"], deployment_env.get("SMS_ARCHIVER_SECRETS_DIR", "")
    )
    if settings is not None:
        check_deployment(objects, settings)
        check_alert_constants(settings)
    exposed, families = exposed_series()
    alerts = list(alert_expressions())
    used = check_names("alerts.yml", [expr for _, expr in alerts], exposed)
    ok(f"alerts.yml: {len(alerts)} rules, {len(used)} series names checked")
    check_dashboard(exposed, families)
    if problems:
        print(f"\n{len(problems)} problem(s) in deploy/")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
