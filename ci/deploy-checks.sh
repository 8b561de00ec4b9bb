#!/usr/bin/env bash
# Deployment checks: the Kubernetes manifests, the Prometheus alert rules and the Grafana dashboard
# of deploy/. Nothing is started: no cluster, no Prometheus, no Grafana; nothing is downloaded at run
# time but the two packages below.
#
#   bash ci/deploy-checks.sh         from anywhere; uses the project's venv at .venv (created by .ci/run)
#
# Installs what it needs:
# - kubernetes-validate (PyPI) into .venv: JSON-schema validation of Kubernetes objects, with the
#   schemas of every Kubernetes version it knows bundled in the wheel (offline, no schema fetched);
# - promtool, taken out of Debian's `prometheus` package without installing the package: its
#   postinst would start a Prometheus server listening on every address (and pull a dozen JS
#   libraries for the web UI). `apt-get download` + `dpkg-deb -x` into a scratch directory costs
#   about 3 s and starts nothing.
# Then: kubernetes-validate --strict on each manifest (the oldest and newest Kubernetes versions
# checked), `kubectl kustomize` when a kubectl is there (offline rendering), promtool check rules
# and test rules, the dashboard's JSON and the PromQL of its queries (as a rule file for promtool),
# and deploy/check_deploy.py (settings, ports, names: what the schemas cannot see).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

KUBERNETES_VALIDATE=kubernetes-validate==1.37.0
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
MANIFESTS=()
for manifest in deploy/kubernetes/*.yaml; do
    [ "$(basename "$manifest")" = kustomization.yaml ] || MANIFESTS+=("$manifest")
done

step() { printf '\n=== %s\n' "$*"; }

step "tools"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import archiver' 2>/dev/null; then
    .venv/bin/pip install -q --disable-pip-version-check -e .
fi
if [ ! -x .venv/bin/kubernetes-validate ]; then
    .venv/bin/pip install -q --disable-pip-version-check "$KUBERNETES_VALIDATE"
fi
echo "kubernetes-validate $(.venv/bin/kubernetes-validate --version)"
if command -v promtool >/dev/null 2>&1; then
    PROMTOOL=$(command -v promtool)
else
    apt-get update -qq
    mkdir "$scratch/deb"
    chmod 0711 "$scratch"
    if id _apt >/dev/null 2>&1; then chown _apt "$scratch/deb"; fi  # apt downloads as the _apt user
    (cd "$scratch/deb" && apt-get download -qq prometheus >/dev/null)
    dpkg-deb -x "$scratch"/deb/prometheus_*.deb "$scratch/prometheus"
    PROMTOOL="$scratch/prometheus/usr/bin/promtool"
fi
"$PROMTOOL" --version | head -1
echo "tools ready in $((SECONDS - started)) s"

step "Kubernetes manifests: kubernetes-validate --strict (Kubernetes ${KUBERNETES_VERSIONS[*]})"
for version in "${KUBERNETES_VERSIONS[@]}"; do
    .venv/bin/kubernetes-validate --strict --quiet -k "$version" "${MANIFESTS[@]}"
    echo "ok    ${#MANIFESTS[@]} manifests against Kubernetes $version"
done

if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    step "kubectl kustomize deploy/kubernetes (offline rendering), validated"
    kubectl kustomize deploy/kubernetes >"$scratch/rendered.yaml"
    .venv/bin/kubernetes-validate --strict --quiet -k "${KUBERNETES_VERSIONS[-1]}" "$scratch/rendered.yaml"
    echo "ok    $(grep -c '^kind:' "$scratch/rendered.yaml") objects rendered"
fi

step "Prometheus: promtool check rules, promtool test rules"
"$PROMTOOL" check rules deploy/prometheus/alerts.yml
"$PROMTOOL" test rules deploy/prometheus/alerts.test.yml

step "Grafana dashboard: JSON, and its queries' PromQL (promtool check rules)"
.venv/bin/python -m json.tool deploy/grafana/sms-archiver.json >/dev/null
echo "ok    deploy/grafana/sms-archiver.json is JSON"
.venv/bin/python deploy/check_deploy.py --dashboard-rules "$scratch/dashboard-rules.yml"
"$PROMTOOL" check rules "$scratch/dashboard-rules.yml"

step "deploy/check_deploy.py: settings, ports, probes, alert constants, metric names"
.venv/bin/python deploy/check_deploy.py

step "deploy checks passed in $((SECONDS - started)) s"
