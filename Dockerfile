# LOTUS dashboard. Build: docker build -t lotus .   Run: docker run -p 8501:8501 lotus
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 LOTUS_DB=/var/lib/lotus/lotus.db
WORKDIR /opt/lotus

# Dependency layer first, so source edits do not reinstall torch.
COPY requirements.txt pyproject.toml ./
RUN pip install -r requirements.txt

COPY lotus_core ./lotus_core
COPY app ./app
COPY pages ./pages
COPY data ./data
COPY .streamlit ./.streamlit
RUN pip install --no-deps -e . && mkdir -p /var/lib/lotus

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://localhost:8501/_stcore/health').status != 200)"
CMD ["streamlit", "run", "app/streamlit_app.py", "--server.port=8501", "--server.address=0.0.0.0", \
     "--server.headless=true", "--browser.gatherUsageStats=false"]
