"""Elasticsearch 8.19 for tests and the demo: Elastic's minimal official distribution
(integ-test-zip from Maven Central), single node on 127.0.0.1, no security, small heap.

The minimal distribution carries the server and x-pack core/security modules only. Checked on
8.19.21: index/bulk/search/count, date_nanos, flattened, index templates, aliases, PIT, scroll,
terms/date_histogram/composite/top_hits/cardinality/percentiles aggregations all work. Missing:
`GET /` (so the client's ping()/info() fail: use cluster.health()), delete/update_by_query and
reindex, painless scripts, ingest processors, data streams, ILM, ES|QL, the aggregations module
(bucket_sort, ...) and x-pack analytics (multi_terms), and the field types scaled_float,
match_only_text, wildcard, constant_keyword, unsigned_long and version."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

from etl.errors import ServiceError
from etl.locks import exclusive
from etl.services.base import Service
from etl.services.support import (as_user, give_to, let_read, maven_fetch, service_user, unzip_keep_modes,
                                  up_once)

VERSION = "8.19.21"
ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{VERSION}:zip"
# ES 8.x runs on Java 17+; the zip bundles no JDK. First one present wins (ES_JAVA_HOME overrides).
JDK_CANDIDATES = ("/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/temurin-25-jdk-amd64")


class Elasticsearch(Service):
    name = "elasticsearch"
    start_timeout = 240.0

    @property
    def dist_dir(self) -> Path:
        return self.settings.opt_dir / f"elasticsearch-{VERSION}"

    @property
    def conf_dir(self) -> Path:
        return self.data_dir / "config"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.es_port}"

    def endpoint(self) -> str:
        return f"{self.url} (Elasticsearch {VERSION}, data {self.data_dir})"

    # -- install -------------------------------------------------------------
    def install(self) -> None:
        with exclusive(self.settings.run_dir / "elasticsearch.install.lock"):
            self._install_locked()

    def _install_locked(self) -> None:
        if (self.dist_dir / "bin" / "elasticsearch").exists():
            return
        self.settings.opt_dir.mkdir(parents=True, exist_ok=True)
        download = self.settings.opt_dir / "downloads"
        archive = maven_fetch(ARTIFACT, download)
        staging = self.settings.opt_dir / f".elasticsearch-{VERSION}.unpacking"
        shutil.rmtree(staging, ignore_errors=True)
        unzip_keep_modes(archive, staging)
        # Unpack aside then rename, so a half-unpacked tree is never taken for an installed one.
        (staging / f"elasticsearch-{VERSION}").rename(self.dist_dir)
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink(missing_ok=True)

    # -- start/stop ----------------------------------------------------------
    def up(self) -> None:
        up_once(self)

    def java_home(self) -> str:
        if os.environ.get("ES_JAVA_HOME"):
            return os.environ["ES_JAVA_HOME"]
        for candidate in JDK_CANDIDATES:
            if Path(candidate, "bin", "java").exists():
                return candidate
        raise ServiceError(f"no JDK for Elasticsearch: set ES_JAVA_HOME or install one of {JDK_CANDIDATES}")

    def _write_config(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for name in ("jvm.options", "log4j2.properties"):
            shutil.copy(self.dist_dir / "config" / name, self.conf_dir / name)
        (self.conf_dir / "jvm.options.d").mkdir(exist_ok=True)
        settings = {
            "cluster.name": "monetl-local",
            "node.name": "monetl-local-1",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": self.settings.es_port,
            "transport.port": "9300-9399",
            "path.data": str(self.data_dir / "data"),
            "path.logs": str(self.data_dir / "logs"),
            "xpack.security.enabled": False,
            # A nearly full developer disk must not turn indices read-only mid-test.
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "action.destructive_requires_name": False,
        }
        # JSON is valid YAML: no YAML writer needed.
        (self.conf_dir / "elasticsearch.yml").write_text(
            "".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))

    def start(self) -> None:
        # An unhealthy leftover process of ours would hold the port and the data directory lock.
        self.stop_pidfile()
        user = service_user()
        self._write_config()
        for sub in ("data", "logs", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        give_to(user, self.data_dir)
        let_read(user, self.dist_dir)
        env = {
            "ES_JAVA_HOME": self.java_home(),
            "ES_PATH_CONF": str(self.conf_dir),
            "ES_TMPDIR": str(self.data_dir / "tmp"),
            "ES_JAVA_OPTS": os.environ.get("MONETL_ES_JAVA_OPTS", "-Xms1g -Xmx1g"),
        }
        self.spawn(as_user(user, [str(self.dist_dir / "bin" / "elasticsearch")]), env=env, cwd=self.data_dir)

    def stop(self) -> None:
        with exclusive(self.settings.run_dir / "elasticsearch.lock"):
            self.stop_pidfile()

    # -- health --------------------------------------------------------------
    def cluster_health(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_cluster/health", timeout=3) as resp:
            return json.loads(resp.read())

    def healthy(self) -> bool:
        try:
            return self.cluster_health().get("status") in ("yellow", "green")
        except (OSError, ValueError):
            return False
