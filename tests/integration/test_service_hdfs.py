"""The local HDFS service: a real MiniDFSCluster reached over WebHDFS with the `hdfs` package."""

from __future__ import annotations

import uuid

import pytest
from hdfs import InsecureClient
from hdfs.util import HdfsError

from etl import services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(hdfs_service, settings):
    return InsecureClient(hdfs_service.webhdfs_url, user=settings.hdfs_user)


@pytest.fixture
def workdir(client):
    # Unique per test run: other suites share this file system.
    path = f"/tmp/monetltest-hdfssvc-{uuid.uuid4().hex[:8]}"
    client.makedirs(path)
    yield path
    client.delete(path, recursive=True)


def test_write_rename_read_list_delete(client, workdir, settings):
    payload = "clock,value\n1767225600,42.5\n".encode() * 1000
    client.write(f"{workdir}/part-0.tmp", data=payload)
    client.rename(f"{workdir}/part-0.tmp", f"{workdir}/part-0.csv")

    # The read is redirected to the datanode's HTTP address: this proves it is reachable.
    with client.read(f"{workdir}/part-0.csv") as reader:
        assert reader.read() == payload
    assert client.list(workdir) == ["part-0.csv"]
    status = client.status(f"{workdir}/part-0.csv")
    assert status["length"] == len(payload)
    assert status["owner"] == settings.hdfs_user

    assert client.delete(f"{workdir}/part-0.csv") is True
    assert client.list(workdir) == []
    assert client.status(f"{workdir}/part-0.csv", strict=False) is None


def test_overwrite_refused_unless_asked(client, workdir):
    client.write(f"{workdir}/f", data=b"one")
    with pytest.raises(HdfsError):
        client.write(f"{workdir}/f", data=b"two")
    client.write(f"{workdir}/f", data=b"three", overwrite=True)
    with client.read(f"{workdir}/f") as reader:
        assert reader.read() == b"three"


def test_ensure_twice_reuses_the_running_cluster(hdfs_service, settings):
    before = hdfs_service.pid_file.read_text()
    again = services.ensure("hdfs", settings)
    assert again.healthy()
    assert again.pid_file.read_text() == before
