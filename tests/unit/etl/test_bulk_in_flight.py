"""etl.search.load with several bulk requests open at once: answers are taken in request order, so
refused rows, already-stored counts and progress are the same as one request at a time; a failing
request stops the load with nothing left running. The client is a fake at the bulk call."""

from __future__ import annotations

import json
import threading
import time

import pytest

from etl.errors import StoreError
from etl.search import load

from points_factory import batch, point


class SlowClient:
    """Answers a bulk after a delay that shrinks with each request (later ones finish first);
    refuses documents of itemid 13 and answers 409 for itemid 7's create."""

    def __init__(self, fail_at: int | None = None):
        self.open = self.most_open = self.requests = 0
        self.lock = threading.Lock()
        self.fail_at = fail_at

    def bulk(self, operations, filter_path=None):
        with self.lock:
            self.requests += 1
            number = self.requests
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        try:
            time.sleep(max(0.0, 0.05 - 0.01 * number))
            if number == self.fail_at:
                raise ConnectionError("node went away")
            lines = operations.decode().splitlines()
            items = []
            for action, source in zip(lines[::2], lines[1::2]):
                ((op, meta),) = json.loads(action).items()
                itemid = json.loads(source)["itemid"]
                if itemid == 13:
                    items.append({op: {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "x"}}})
                else:
                    items.append({op: {"status": 201}})
            return {"errors": any(i[next(iter(i))]["status"] >= 300 for i in items), "items": items}
        finally:
            with self.lock:
                self.open -= 1


def docs_of(n: int):
    return load.documents(batch([point(itemid=i, clock=1_790_000_000 + i) for i in range(n)]), "tc")


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_answers_are_taken_in_request_order(in_flight):
    client, progress = SlowClient(), []
    result = load.bulk(client, docs_of(50), chunk_docs=5, in_flight=in_flight, on_chunk=progress.append)
    assert result.loaded == 49 and list(result.failed) == [13] and "mapper_parsing_exception" in result.failed[13]
    assert progress == [5 * k for k in range(1, 11)] and client.requests == 10
    assert client.most_open == in_flight


def test_a_failing_request_stops_the_load_with_nothing_left_open():
    client = SlowClient(fail_at=3)
    with pytest.raises(StoreError, match="node went away"):
        load.bulk(client, docs_of(50), chunk_docs=5, in_flight=2)
    assert client.open == 0 and client.requests < 10
