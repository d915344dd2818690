FROM python:3.11-slim

# OpenCV's headless wheel needs no system libraries beyond glibc; nothing else to install.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY oilspill ./oilspill
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 oilspill \
    && mkdir -p /data && chown oilspill /data

USER oilspill
ENV OILSPILL_HOST=0.0.0.0 \
    OILSPILL_PORT=8000 \
    OILSPILL_DATA_DIR=/data
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["oilspill", "serve"]
