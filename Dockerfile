# One image for every daemon: compose runs it once per `ledger serve <name>`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ledger ./ledger
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 ledger
COPY --from=build /install /usr/local
USER ledger
WORKDIR /home/ledger
ENTRYPOINT []
CMD ["ledger", "--help"]
