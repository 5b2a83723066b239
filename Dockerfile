FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dispatcher ./dispatcher
COPY channels ./channels
COPY workers ./workers
COPY templates ./templates
RUN pip install --no-cache-dir '.[postgres]'
WORKDIR /data
ENTRYPOINT ["tocsin"]
CMD ["--help"]
