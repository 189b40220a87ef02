# The service image: `manage.py serve` (migrations, then HTTP on 8080 and gRPC on 50051) as a non-root user.
# The builder stage installs the requirements into a virtualenv; the final stage copies only that virtualenv and
# the code, so nothing used to build (pip caches, compilers if a wheel ever needs one) reaches the image.

FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt


FROM python:3.11-slim

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=exchange.settings.production \
    STATIC_ROOT=/app/staticfiles \
    HTTP_PORT=8080 \
    GRPC_PORT=50051

WORKDIR /app

COPY --from=builder /opt/venv /opt/venv
# Owned by root and read-only to the service user: the process never needs to change its own code.
COPY . /app

# The admin's CSS/JS and the API docs' assets, collected into STATIC_ROOT, which WhiteNoise serves under /static/
# (it would also find them in the installed packages; collected, they are indexed from one folder). Local settings
# here only because production refuses to load without SECRET_KEY, which must not be baked into an image;
# collectstatic reads no secret and touches no database.
# api-keys.txt is the one file the service writes in /app: serve seeds an empty database with demo accounts and
# writes their new API keys there (mode 0600). Pre-created for the service user so /app itself stays read-only.
RUN DJANGO_SETTINGS_MODULE=exchange.settings.local python manage.py collectstatic --noinput --verbosity 0 \
    && groupadd --system --gid 10001 exchange \
    && useradd --system --uid 10001 --gid exchange --home-dir /app --no-create-home --shell /usr/sbin/nologin exchange \
    && install -o 10001 -g 10001 -m 600 /dev/null /app/api-keys.txt

# Numeric, so a runtime that enforces runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

EXPOSE 8080 50051

# Liveness only (touches no dependency), so a slow database never gets the container restarted.
# python, not curl: the slim image has no curl. urlopen raises on anything but 2xx, and the exit code is then 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('HTTP_PORT', '8080'), timeout=3)"]

# serve stops cleanly on SIGTERM: gRPC health NOT_SERVING first, in-flight requests finish, exit 0.
CMD ["python", "manage.py", "serve"]
