# One image for every subcommand: `trace-insights collector | aggregator | api | migrate | up`.
# Build: docker build -t trace-insights:0.1.0 .

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY trace_insights ./trace_insights
COPY collector ./collector
COPY aggregator ./aggregator
COPY api ./api
RUN python -m venv /opt/trace-insights \
 && /opt/trace-insights/bin/pip install . \
 && /opt/trace-insights/bin/pip uninstall -y pip

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="trace-insights" \
      org.opencontainers.image.description="OTLP traces of LLM and agent applications turned into live insights" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 insights \
 && useradd --system --uid 10001 --gid insights --home-dir /var/lib/trace-insights --create-home insights
COPY --from=build /opt/trace-insights /opt/trace-insights
ENV PATH=/opt/trace-insights/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TRACE_INSIGHTS_HOST=0.0.0.0 \
    TRACE_INSIGHTS_DATA_DIR=/var/lib/trace-insights
USER 10001:10001
WORKDIR /var/lib/trace-insights
EXPOSE 4317 4318 8000 9464
ENTRYPOINT ["trace-insights"]
CMD ["up"]
