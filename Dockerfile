FROM python:3.11-slim

# OpenCV's headless wheel needs no system libraries beyond glibc; nothing else to install.
WORKDIR /app

# Dependencies first, read from pyproject.toml, so a code change does not reinstall them.
# Exactly the versions the tests last passed with (constraints.txt).
COPY pyproject.toml README.md constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt -c constraints.txt

COPY oilspill ./oilspill
RUN pip install --no-cache-dir --no-deps . \
    && useradd --create-home --uid 10001 oilspill \
    && mkdir -p /data && chown oilspill /data

# Runs as uid 10001; a bind-mounted data folder must be writable by it
# (e.g. `chown 10001 ./data`). Stop with `docker stop -t 40` or more: running images get
# --shutdown-grace (30 s) to finish, longer than Docker's default 10 s.
USER oilspill
ENV OILSPILL_HOST=0.0.0.0 \
    OILSPILL_PORT=8000 \
    OILSPILL_DATA_DIR=/data
EXPOSE 8000
VOLUME ["/data"]
STOPSIGNAL SIGTERM
# Ready, not only alive: workers and scheduler running, /data writable, disk above
# --min-free-mb, the model server reachable for a remote backend (503 lists what fails).
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"
CMD ["oilspill", "serve"]
