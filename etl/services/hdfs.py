"""HDFS for tests and the demo: a real MiniDFSCluster (namenode + one datanode in one JVM, Hadoop
3.5.0) launched by services/hdfs-minicluster, on 127.0.0.1 with fixed RPC and WebHDFS ports.

The file system lives in run/hdfs and survives restarts (formatted once). Permissions are off:
any WebHDFS user may write, files are owned by the user named in the request (settings.hdfs_user)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.request
from pathlib import Path

from etl.errors import ServiceError
from etl.locks import exclusive
from etl.services.base import Service
from etl.services.support import up_once

PROJECT = Path(__file__).resolve().parents[2] / "services" / "hdfs-minicluster"
MAIN_CLASS = "monetl.hdfs.MiniHdfs"
JDK_CANDIDATES = ("/usr/lib/jvm/java-17-openjdk-amd64",)


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted([PROJECT / "pom.xml", *(PROJECT / "src").rglob("*.java")]):
        digest.update(path.relative_to(PROJECT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class Hdfs(Service):
    name = "hdfs"
    start_timeout = 180.0

    @property
    def webhdfs_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.hdfs_http_port}"

    @property
    def build_stamp(self) -> Path:
        return PROJECT / "target" / ".monetl-build"

    def endpoint(self) -> str:
        return (f"hdfs://127.0.0.1:{self.settings.hdfs_namenode_port} "
                f"webhdfs {self.webhdfs_url} (user {self.settings.hdfs_user}, data {self.data_dir})")

    # -- install -------------------------------------------------------------
    def install(self) -> None:
        with exclusive(self.settings.run_dir / "hdfs.install.lock"):
            digest = _source_digest()
            if self.build_stamp.exists() and self.build_stamp.read_text() == digest:
                return
            if not shutil.which("mvn"):
                raise ServiceError("mvn not found; needed to build services/hdfs-minicluster "
                                   "(scripts/setup.sh installs maven)")
            # A stale lib/ would keep jars of an older Hadoop on the class path.
            shutil.rmtree(PROJECT / "target" / "lib", ignore_errors=True)
            self.run(["mvn", "-q", "-B", "-f", str(PROJECT / "pom.xml"), "package"],
                     "building the HDFS minicluster launcher (mvn package)", env=self._java_env())
            self.build_stamp.write_text(digest)

    def _java_home(self) -> str:
        if os.environ.get("MONETL_HDFS_JAVA_HOME"):
            return os.environ["MONETL_HDFS_JAVA_HOME"]
        for candidate in JDK_CANDIDATES:
            if Path(candidate, "bin", "java").exists():
                return candidate
        java = shutil.which("java")
        if not java:
            raise ServiceError("no Java found for HDFS: install openjdk-17 or set MONETL_HDFS_JAVA_HOME")
        return str(Path(java).resolve().parents[1])

    def _java_env(self) -> dict:
        return {"JAVA_HOME": self._java_home()}

    # -- start/stop ----------------------------------------------------------
    def up(self) -> None:
        up_once(self)

    def start(self) -> None:
        # An unhealthy leftover process of ours would hold the port and the data directory lock.
        self.stop_pidfile()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        java = str(Path(self._java_home()) / "bin" / "java")
        argv = [java, "-Xmx768m", "-Djava.net.preferIPv4Stack=true",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", f"{PROJECT / 'target' / 'classes'}{os.pathsep}{PROJECT / 'target' / 'lib' / '*'}",
                MAIN_CLASS, str(self.data_dir),
                str(self.settings.hdfs_namenode_port), str(self.settings.hdfs_http_port)]
        self.spawn(argv, env=self._java_env(), cwd=self.data_dir)

    def stop(self) -> None:
        with exclusive(self.settings.run_dir / "hdfs.lock"):
            self.stop_pidfile()

    # -- health --------------------------------------------------------------
    def healthy(self) -> bool:
        """WebHDFS answers LISTSTATUS / and a datanode is live (writes would fail without one)."""
        try:
            with urllib.request.urlopen(f"{self.webhdfs_url}/webhdfs/v1/?op=LISTSTATUS"
                                        f"&user.name={self.settings.hdfs_user}", timeout=3) as resp:
                json.loads(resp.read())["FileStatuses"]
            return self._live_datanodes() >= 1
        except (OSError, ValueError, KeyError):
            return False

    def _live_datanodes(self) -> int:
        query = "qry=Hadoop:service=NameNode,name=FSNamesystemState"
        with urllib.request.urlopen(f"{self.webhdfs_url}/jmx?{query}", timeout=3) as resp:
            beans = json.loads(resp.read())["beans"]
        return int(beans[0]["NumLiveDataNodes"]) if beans else 0
