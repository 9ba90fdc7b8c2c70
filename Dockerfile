# trashseg on CPU: serves a trained model mounted at /model (a run folder, or an exported .onnx file).
#   docker build -t trashseg .
#   docker run --rm -p 8000:8000 -v "$PWD/runs/unet_r18:/model:ro" trashseg
#   docker run --rm -p 8000:8000 -v "$PWD/runs/unet_r18:/model:ro" trashseg /model/model.onnx --hflip
# The page is at http://localhost:8000/, the API at /predict (docs/container.md).

FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
# PyTorch's CPU-only build (PyPI's Linux torch is a CUDA build of several GB); versions pinned by requirements.lock
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRASHSEG_CACHE=/tmp/trashseg-cache
COPY requirements.lock /tmp/requirements.lock
COPY --from=wheel /dist /dist
RUN grep -E '^(torch|torchvision)==' /tmp/requirements.lock > /tmp/torch.txt \
    && pip install --index-url "$TORCH_INDEX" -r /tmp/torch.txt \
    && pip install --constraint /tmp/requirements.lock "$(ls /dist/trashseg-*.whl)[onnx]" \
    && rm -rf /dist /tmp/requirements.lock /tmp/torch.txt \
    && useradd --create-home --uid 10001 trashseg
USER 10001
WORKDIR /home/trashseg
EXPOSE 8000
# Liveness: GET /health answers once the server is up (the model loads before it starts listening).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["trashseg", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["/model"]
