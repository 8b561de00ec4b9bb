# sms-archiver in a container: the daemon (`run`) by default; any other subcommand works too.
#   docker build -t sms-archiver .
#   docker run --rm -e SMS_ARCHIVER_STORAGE__URL=s3://bucket/prefix ... sms-archiver        (the daemon)
#   docker run --rm ... sms-archiver archive                                                 (one cycle)
# Secrets: one file per setting in /run/secrets (Docker/compose secrets), e.g. ovh__application_secret.
# See the README ("Run it for good") and compose.example.yaml.

# -- build: the package and its dependencies in a venv, copied whole into the runtime image ---------
FROM python:3.12-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY archiver ./archiver
RUN python -m venv /opt/sms-archiver \
    && /opt/sms-archiver/bin/pip install --no-cache-dir . \
    && /opt/sms-archiver/bin/sms-archiver --help >/dev/null

# -- runtime: no compiler, no pip cache, not root ---------------------------------------------------
FROM python:3.12-slim-bookworm
RUN groupadd --system --gid 10001 sms-archiver \
    && useradd --system --uid 10001 --gid sms-archiver --home-dir /var/lib/sms-archiver \
       --no-create-home --shell /usr/sbin/nologin sms-archiver \
    && install -d -o sms-archiver -g sms-archiver -m 0700 /var/lib/sms-archiver
COPY --from=build /opt/sms-archiver /opt/sms-archiver
ENV PATH=/opt/sms-archiver/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SMS_ARCHIVER_LOG__FORMAT=json \
    SMS_ARCHIVER_METRICS__LISTEN=0.0.0.0:9108
# For a file:// archive (file:///var/lib/sms-archiver/archive), mount a volume here.
WORKDIR /var/lib/sms-archiver
USER 10001:10001
# Prometheus /metrics and /healthz.
EXPOSE 9108
# Healthy while the last successful archive cycle is younger than SMS_ARCHIVER_METRICS__MAX_AGE_SECONDS.
HEALTHCHECK --interval=1m --timeout=10s --start-period=2m --retries=3 \
    CMD ["python", "-m", "archiver.metrics"]
ENTRYPOINT ["sms-archiver"]
CMD ["run"]
