"""Demo stage: install the health template and the `monetl` host, measure and push the status
figures, send the figures the demo's runs recorded (pushed before the host existed, Zabbix refused
them), and show `monetl status`."""

from __future__ import annotations

import time


def install_demo(settings) -> list[str]:
    """First stage: the template before any run, so every run's figures land in Zabbix."""
    from etl.health import template

    found = template.install(settings)
    return [f"Zabbix host {found['host']}: template {template.TEMPLATE_NAME} with {found['items']} trapper items, "
            f"{found['triggers']} triggers ({template.TEMPLATE_FILE.name})"]


def run_demo(settings) -> list[str]:
    from etl.health import push, status
    from etl.seed.fleet import demo_hosts

    lines = install_demo(settings)  # idempotent; the host may have been removed since the first stage
    # The demo ingests its own fleet only (a shared Zabbix holds other hosts too): gaps alike.
    current = status.collect(settings, hosts={"zabbix": demo_hosts()})
    # The server takes a moment to load the new items after the cache reload: a batch refused whole
    # (nothing processed) is safe to send again.
    pushed = None
    for _ in range(15):
        pushed = push.push(settings, current.figures())
        if pushed is None or pushed["processed"]:
            break
        time.sleep(2)
    resent = push.resend_state(settings)
    lines.append(f"status figures pushed: {pushed}; figures recorded by this demo's runs re-sent: {resent}")
    lines += current.lines()
    return lines
