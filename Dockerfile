# The runner's web process for Railway. The same image also runs the run subprocesses and cron jobs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /app

# A fixed, unprivileged user. Railway mounts volumes as root: a volume-backed OUTPUT_DIR needs
# RAILWAY_RUN_UID=0 (or a chown at start), otherwise writes to it fail (cron validate says so).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app

# Dependencies first, in their own layer: a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# Exactly what runs: no tests, no bench, no docs.
COPY config ./config
COPY handlers ./handlers
COPY pipeline ./pipeline
COPY persistence ./persistence
COPY data/brand-profiles ./data/brand-profiles
COPY data/samples ./data/samples
COPY sql ./sql
COPY Procfile ./

# The default OUTPUT_DIR (no volume) must be writable by the app user; the code stays root-owned.
RUN mkdir -p /app/data/test-outputs && chown app:app /app/data/test-outputs

USER 10001:10001

EXPOSE 8000

# urllib from the standard library: the image needs no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4).status == 200 else 1)"]

# exec replaces the shell: gunicorn is PID 1 and receives Railway's SIGTERM itself.
CMD ["sh", "-c", "exec gunicorn -c handlers/gunicorn.conf.py 'handlers.app:create_app()'"]
