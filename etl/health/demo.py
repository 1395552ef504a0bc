"""Demo stage: install the health template and the `monetl` host, send the figures the demo's runs
recorded (pushed before the host existed, Zabbix refused them), measure and push the status
figures, and show `monetl status`."""

from __future__ import annotations


def run_demo(settings) -> list[str]:
    from etl.health import push, status, template

    found = template.install(settings)
    lines = [f"Zabbix host {found['host']}: template {template.TEMPLATE_NAME} with {found['items']} trapper items, "
             f"{found['triggers']} triggers ({template.TEMPLATE_FILE.name})"]
    resent = push.resend_state(settings)
    current = status.collect(settings)
    pushed = push.push(settings, current.figures())
    lines.append(f"figures recorded by this demo's runs re-sent: {resent}; status figures pushed: {pushed}")
    lines += current.lines()
    return lines
