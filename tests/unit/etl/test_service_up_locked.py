"""Service.up_locked: the start-once-under-a-file-lock step Postgres and Zabbix share. The health
probe is faked (a unit test of the logic); the lock is a real file lock."""

from __future__ import annotations

import dataclasses
import fcntl

import pytest

from etl.config import Settings
from etl.services.base import Service


class _Probe(Service):
    name = "probe"

    def __init__(self, settings, answers):
        super().__init__(settings)
        self.answers = list(answers)  # what healthy() says, call by call
        self.started = 0
        self.lock_held_while_starting = None

    def healthy(self) -> bool:
        return self.answers.pop(0)

    def bring_up(self, lock) -> None:
        self.started += 1
        with open(lock, "a") as other:  # another open file: flock conflicts with the holder
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.lock_held_while_starting = True
            else:
                self.lock_held_while_starting = False
                fcntl.flock(other, fcntl.LOCK_UN)


@pytest.fixture
def lock(tmp_path):
    return tmp_path / "locks" / "probe.lock"


def _probe(tmp_path, answers) -> _Probe:
    return _Probe(dataclasses.replace(Settings(), home=tmp_path / "home"), answers)


def test_healthy_service_is_not_started_and_takes_no_lock(tmp_path, lock):
    svc = _probe(tmp_path, [True])
    svc.up_locked(lock, lambda: svc.bring_up(lock))
    assert svc.started == 0 and not lock.exists() and svc.answers == []


def test_unhealthy_service_is_started_once_holding_the_lock(tmp_path, lock):
    svc = _probe(tmp_path, [False, False])
    svc.up_locked(lock, lambda: svc.bring_up(lock))
    assert svc.started == 1 and svc.lock_held_while_starting is True and svc.answers == []
    assert svc.settings.run_dir.is_dir()


def test_service_made_healthy_while_waiting_for_the_lock_is_not_started_again(tmp_path, lock):
    svc = _probe(tmp_path, [False, True])  # unhealthy at first, healthy once the lock is ours
    svc.up_locked(lock, lambda: svc.bring_up(lock))
    assert svc.started == 0 and svc.answers == []
