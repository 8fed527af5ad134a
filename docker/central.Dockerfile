# Central service: API, review UI and MQTT ingest (PostgreSQL and the broker run beside it).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --create-home --uid 10001 roadwatch
WORKDIR /opt/roadwatch
COPY pyproject.toml constraints.txt README.md ./
COPY roadwatch ./roadwatch
COPY central ./central
COPY edge ./edge
COPY calibration ./calibration
COPY models ./models
COPY schema ./schema
RUN pip install -c constraints.txt ".[central]"

USER 10001
EXPOSE 8000
VOLUME ["/var/lib/roadwatch"]
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["roadwatch", "central"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--with-ingest"]
