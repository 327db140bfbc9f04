# results-realtime daemon: runs beside the database, logs JSON lines to stdout.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md hatch_build.py ./
COPY daemon ./daemon
COPY sql ./sql
# daemon/sql is a symlink to ../sql; the wheel build follows it, so the SQL ships in the package.
# No clients/js here: the daemon's image carries no demo page (hatch_build.py says so and goes on).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    RESULTS_REALTIME_DAEMON_HEALTH_HOST=0.0.0.0 \
    RESULTS_REALTIME_DAEMON_HEALTH_PORT=8085
RUN useradd --system --uid 10001 --no-create-home results-realtime
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config.toml /etc/results-realtime/config.toml
ENV RESULTS_REALTIME_CONFIG=/etc/results-realtime/config.toml
USER results-realtime
EXPOSE 8085
# The probe reads the settings as `run` does, so it follows RESULTS_REALTIME_DAEMON_HEALTH_PORT.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-m", "daemon.healthcheck"]
# Exec form: SIGTERM reaches Python directly, which drains and exits 0.
ENTRYPOINT ["results-realtime"]
CMD ["run"]
