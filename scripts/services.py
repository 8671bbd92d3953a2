"""Start and stop the real services (Apache Kafka, PostgreSQL, Redis) on loopback ports.

The one owner of service lifecycles: pytest fixtures import it, ``make run`` calls its CLI.
Each service lives in its own directory; nothing is installed system-wide here (the Debian
packages come from ``scripts/install-deps.sh``). Kafka runs on the JVM from the broker's jars,
resolved from Maven Central by ``scripts/kafka/pom.xml`` and cached between runs.

    python scripts/services.py up --dir DIR [--only kafka,redis,postgres]   # prints env lines
    python scripts/services.py down --dir DIR
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KAFKA_POM = ROOT / "scripts" / "kafka" / "pom.xml"
KAFKA_LOG_CONFIG = ROOT / "scripts" / "kafka" / "log4j2.yaml"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "trace-insights"


class ServiceError(RuntimeError):
    """A service could not be started; the message says what to install or look at."""


_GIVEN: set[int] = set()


def free_port() -> int:
    """A port free now and not given before by this process: the kernel hands a port it just
    freed out again, so two asked for in a row could be one (an API and an OTLP port once were,
    and the second bind failed)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(
                f"process exited with {process.returncode} before port {port} opened"
            )
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise ServiceError(f"port {port} did not open within {timeout_s:g} s")


def _stop(process: subprocess.Popen | None, timeout_s: float = 20) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Kafka:
    """A single-node Apache Kafka 4.x broker in KRaft combined mode."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.controller_port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90) -> None:
        jars = kafka_jars()
        java = shutil.which("java")
        if java is None:
            raise ServiceError("java is not installed: run scripts/install-deps.sh (openjdk-17)")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "server.properties"
        config.write_text(self._properties())
        classpath = f"{jars}/*"
        if not (self.directory / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            subprocess.run(
                [
                    java,
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(config),
                ],
                check=True,
                capture_output=True,
            )
        log = (self.directory / "broker.log").open("ab")
        self.process = subprocess.Popen(
            [
                java,
                "-Xms256m",
                "-Xmx768m",
                "-XX:+UseSerialGC",
                f"-Dlog4j2.configurationFile={KAFKA_LOG_CONFIG}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout_s, self.process)
        self._wait_ready(timeout_s)

    def stop(self) -> None:
        _stop(self.process)
        self.process = None

    def _wait_ready(self, timeout_s: float) -> None:
        """The port opens before the broker serves metadata; ask until it answers."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
                admin.list_topics()
                admin.close()
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise ServiceError("Kafka broker did not become ready") from None
                time.sleep(0.3)

    def _properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.directory / 'data'}",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "group.initial.rebalance.delay.ms=0",
                "num.partitions=1",
                "auto.create.topics.enable=false",
                "",
            ]
        )


def kafka_jars() -> Path:
    """The broker's jars, fetched once with Maven and cached under ~/.cache/trace-insights."""
    version = re.search(r"<kafka.version>([^<]+)<", KAFKA_POM.read_text()).group(1)  # type: ignore[union-attr]
    target = CACHE / f"kafka-{version}"
    if (target / f"kafka_2.13-{version}.jar").exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("maven is not installed: run scripts/install-deps.sh")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ServiceError(
            f"could not fetch the Kafka broker jars:\n{result.stdout}{result.stderr}"
        )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


class Redis:
    """Redis without persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServiceError("redis-server is not installed: apt-get install redis-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
            ],
            stdout=(self.directory / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, 20, self.process)

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


class Postgres:
    """A fresh PostgreSQL cluster with the pg_trgm extension in database ``trace_insights``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.bin = _postgres_bin()
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/trace_insights"

    def start(self) -> None:
        """Create the cluster and start it; once stopped, start it again as it was."""
        data = self.directory / "data"
        created = (data / "PG_VERSION").exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        if not created:
            self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(self.directory / "postgres.log"),
            "-w",
            "start",
        )
        self.started = True
        if created:
            return
        self._run(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "trace_insights"
        )
        self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "trace_insights",
            "-qc",
            "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        )

    def stop(self) -> None:
        if self.started:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")
            self.started = False

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd="/")
        if result.returncode != 0:
            raise ServiceError(f"{tool} failed: {result.stderr.strip() or result.stdout.strip()}")


def _postgres_bin() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not candidates:
        raise ServiceError(
            "PostgreSQL server is not installed: apt-get install postgresql postgresql-contrib"
        )
    return Path(candidates[-1]).parent


SERVICES = {"kafka": Kafka, "redis": Redis, "postgres": Postgres}
ENV_NAMES = {
    "kafka": ("TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS", "bootstrap_servers"),
    "redis": ("TRACE_INSIGHTS_REDIS_URL", "url"),
    "postgres": ("TRACE_INSIGHTS_DATABASE_URL", "url"),
}


def _up(directory: Path, names: list[str]) -> None:
    state: dict[str, dict] = {}
    for name in names:
        service = SERVICES[name](directory / name)
        service.start()
        env_name, attribute = ENV_NAMES[name]
        state[name] = {"env": env_name, "value": getattr(service, attribute)}
        if name == "postgres":
            state[name]["data"] = str(service.directory / "data")
            state[name]["bin"] = str(service.bin)
        else:
            state[name]["pid"] = service.process.pid  # type: ignore[union-attr]
        print(f"{env_name}={state[name]['value']}")
    (directory / "services.json").write_text(json.dumps(state))
    (directory / "env").write_text("".join(f"{s['env']}={s['value']}\n" for s in state.values()))


def _down(directory: Path) -> None:
    path = directory / "services.json"
    if not path.exists():
        return
    for name, entry in json.loads(path.read_text()).items():
        if name == "postgres":
            command = [f"{entry['bin']}/pg_ctl", "-D", entry["data"], "-m", "fast", "stop"]
            if os.geteuid() == 0:
                command = ["runuser", "-u", "postgres", "--", *command]
            subprocess.run(command, capture_output=True, cwd="/")
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(entry["pid"], signal.SIGTERM)
    path.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--only", default="kafka,redis,postgres")
    args = parser.parse_args()
    directory = args.dir.resolve()
    try:
        if args.action == "up":
            _down(directory)
            _up(directory, [name.strip() for name in args.only.split(",") if name.strip()])
        else:
            _down(directory)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
