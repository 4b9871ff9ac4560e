# The runner's web process for Railway. The same image also runs the run subprocesses and cron jobs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /app

# A fixed, unprivileged user that runs the app. Railway mounts volumes as root: the entrypoint
# (docker/entrypoint.sh) gives the volume to this user, then drops to it with setpriv.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app

# Dependencies first, in their own layer: a code change does not reinstall them.
# requirements.txt is the generated lock (scripts/lock.py): every distribution pinned and hashed.
COPY requirements.txt ./
RUN pip install --no-cache-dir --require-hashes -r requirements.txt

# Exactly what runs: no tests, no bench, no docs.
COPY config ./config
COPY handlers ./handlers
COPY pipeline ./pipeline
COPY persistence ./persistence
COPY data/brand-profiles ./data/brand-profiles
COPY data/samples ./data/samples
COPY sql ./sql
COPY Procfile ./
COPY docker ./docker

# The default OUTPUT_DIR (no volume) must be writable by the app user; the code stays root-owned.
RUN mkdir -p /app/data/test-outputs && chown app:app /app/data/test-outputs

# No USER: the entrypoint starts as root only to fix the volume's owner, then runs every command
# (web, worker, cron, pre-deploy) as app. Nothing else in the image runs as root.
ENTRYPOINT ["/app/docker/entrypoint.sh"]

EXPOSE 8000

# urllib from the standard library: the image needs no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4).status == 200 else 1)"]

# exec replaces the shell: gunicorn is PID 1 and receives Railway's SIGTERM itself.
CMD ["sh", "-c", "exec gunicorn -c handlers/gunicorn.conf.py 'handlers.app:create_app()'"]
