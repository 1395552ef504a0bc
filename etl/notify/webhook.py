"""HTTP notifiers: a generic JSON webhook and the WeChat Work (企业微信) group robot, whose body is
{"msgtype": "markdown", "markdown": {"content": ...}} and whose answer carries errcode 0 on success.
The URLs hold the robot key, so they are Secrets and are never printed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from etl.config import Secret
from etl.notify.base import NotifyError, markdown, subject


def _post_json(url: Secret, payload: dict, timeout: float, what: str) -> bytes:
    request = urllib.request.Request(url.reveal(), data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                                     headers={"Content-Type": "application/json; charset=utf-8"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise NotifyError(f"{what} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NotifyError(f"{what} unreachable: {type(reason).__name__}") from None


class WebhookNotifier:
    """POSTs {"subject", "findings": [...]} as JSON."""

    name = "webhook"

    def __init__(self, url: Secret, timeout: float = 15.0):
        self.url = url
        self.timeout = timeout

    def send(self, findings: list[dict]) -> None:
        _post_json(self.url, {"subject": subject(findings), "findings": findings}, self.timeout, "webhook")


class WeComRobotNotifier:
    name = "wecom"

    def __init__(self, url: Secret, timeout: float = 15.0):
        self.url = url
        self.timeout = timeout

    def send(self, findings: list[dict]) -> None:
        body = _post_json(self.url, {"msgtype": "markdown", "markdown": {"content": markdown(findings)}},
                          self.timeout, "WeChat Work robot")
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            raise NotifyError("WeChat Work robot answered with something that is not JSON") from None
        if answer.get("errcode", 0) != 0:
            raise NotifyError(f"WeChat Work robot refused the message: errcode {answer.get('errcode')} "
                              f"{answer.get('errmsg', '')}")
