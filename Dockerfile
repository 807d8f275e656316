# Order Tower image: the web app/API (default command) and, with another command,
# `tower worker` or `tower db upgrade`. See compose.yaml for the production wiring.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# data/ and assets/ are not package data: the code finds them next to itself
# (tower/settings.py and app.py resolve them from __file__). So the source tree in
# /app is what runs (PYTHONPATH below); `pip install .` brings the dependencies and
# the `tower` command. README.md is copied because pyproject.toml names it as readme.
COPY pyproject.toml README.md app.py ./
COPY tower/ tower/
COPY simulation/ simulation/
COPY widgets/ widgets/
COPY data/ data/
COPY assets/ assets/
COPY docker/entrypoint.sh /usr/local/bin/tower-entrypoint

RUN pip install . \
    && rm -rf build order_tower.egg-info \
    && chmod 0755 /usr/local/bin/tower-entrypoint \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/tower \
       --shell /usr/sbin/nologin tower \
    && mkdir -p /app/var \
    && chown tower:tower /app/var

# /app first on the path, so `tower`, gunicorn and python all load the same tree.
# Without DATABASE_URL the image runs embedded on SQLite at /app/var/tower.db
# (mount a volume there to keep it). TOWER_MIGRATE=1 lets the entrypoint apply the
# migrations once before the command starts; compose turns it off and runs a
# one-shot `migrate` service instead.
ENV PYTHONPATH=/app \
    TOWER_DATA_DIR=/app/data \
    TOWER_MIGRATE=1

USER tower

EXPOSE 8050

# slim has no curl: ask /healthz with the standard library. A 503 raises, so exit 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8050/healthz', timeout=4)"]

ENTRYPOINT ["tower-entrypoint"]
CMD ["gunicorn", "--bind", "0.0.0.0:8050", "--workers", "2", "--threads", "4", "--timeout", "60", "app:server"]
