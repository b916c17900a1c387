# Harbour ID: one image for the five services. The Deployment's args pick the service:
#   docker build -t harbour-id:0.1.0 .
#   docker run --rm harbour-id:0.1.0 services.gateway      (configured by HARBOUR_* variables only)
# Runs as a non-root user and works on a read-only root filesystem (only /tmp is written).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/harbour
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
COPY clients ./clients
# The pinned runtime dependencies only: no dev or test extras.
RUN /opt/harbour/bin/pip install .
# The services run under `python -OO` (PYTHONOPTIMIZE below: no docstrings or asserts in memory); the root filesystem
# is read-only, so the bytecode for that level is compiled here.
RUN /opt/harbour/bin/python -OO -m compileall -q /opt/harbour

FROM python:3.11-slim
# The PDF font (HARBOUR_PDF_FONT): signing's visible signature stamps print Latin and Chinese; signing refuses to start without it.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-wqy-microhei \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 harbour \
 && useradd --system --uid 10001 --gid harbour --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin harbour
COPY --from=build /opt/harbour /opt/harbour
RUN python -OO -m compileall -q /usr/local/lib/python3.11 > /dev/null || true
ENV PATH=/opt/harbour/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONOPTIMIZE=2 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000 8001 8002 8003 8004
ENTRYPOINT ["python", "-m"]
CMD ["services.gateway"]
