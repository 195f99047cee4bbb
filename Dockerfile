# LOTUS dashboard. Build: docker build -t lotus .
# Run:  docker run -p 127.0.0.1:8501:8501 -v lotus-data:/var/lib/lotus lotus
# The container serves on its network interface (the host's -p decides who can reach it), so the
# dashboard reads models, datasets and weights only from LOTUS_SERVE_ROOTS (data/ and /var/lib/lotus).
# It runs as the unprivileged user `lotus`; the results store lives on the /var/lib/lotus volume.
# BASE: any image with Python 3.11 and pip on PATH; scripts/build_container.sh builds a Debian one locally
# (debootstrap) where no registry is reachable (docs/container.md).
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 LOTUS_DB=/var/lib/lotus/lotus.db \
    LOTUS_SERVE_ROOTS=/opt/lotus/data:/var/lib/lotus
WORKDIR /opt/lotus

# Dependency layer first, so source edits do not reinstall torch.
COPY requirements.txt pyproject.toml ./
RUN pip install -r requirements.txt

COPY lotus_core ./lotus_core
COPY app ./app
COPY pages ./pages
COPY data ./data
COPY .streamlit ./.streamlit
RUN pip install --no-deps -e . \
 && useradd --system --uid 10001 --home-dir /var/lib/lotus --shell /usr/sbin/nologin lotus \
 && mkdir -p /var/lib/lotus && chown lotus:lotus /var/lib/lotus
USER lotus
VOLUME ["/var/lib/lotus"]

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://localhost:8501/_stcore/health').status != 200)"
# A new volume starts from the shipped demo results (data/demo/lotus-demo.db); an existing store is kept.
CMD ["sh", "-c", "python -c 'from lotus_core.views.demo import seed_store; seed_store()' && exec streamlit run \
app/streamlit_app.py --server.port=8501 --server.address=0.0.0.0 --server.headless=true --browser.gatherUsageStats=false"]
