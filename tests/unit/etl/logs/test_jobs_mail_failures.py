import math

from etl.logs.jobs.mail_failures import pflogsumm, spike_threshold
from etl.window import Window


def test_spike_threshold_is_mean_plus_sigmas():
    assert spike_threshold([2, 4, 4, 4, 5, 5, 7, 9], 3.0) == 5 + 3 * 2
    assert spike_threshold([0] * 24, 3.0) == 0
    assert math.isinf(spike_threshold([], 3.0))


def test_pflogsumm_lists_totals_and_worst_domains():
    total = {"counts": {"sent": 8, "deferred": 1, "bounced": 1, "expired": 0, "rejected": 10},
             "dsn": {"2.x.x": 8, "4.x.x": 1, "5.x.x": 11}, "reasons": [("Relay access denied", 6)],
             "delay": {"p50": 0.5, "p95": 12.0}}
    row = {"key": "example.com", "sent": 0, "deferred": 1, "bounced": 1, "expired": 0, "rejected": 6, "failures": 8}
    ok = {"key": "good.org", "sent": 8, "deferred": 0, "bounced": 0, "expired": 0, "rejected": 0, "failures": 0}
    lines = pflogsumm(Window.parse("2026-01-01", "2026-01-02"), total, [ok, row], [], 10)
    text = "\n".join(lines)
    assert "      10  rejected   50.0%" in text
    assert "p95 12.0s" in text
    assert "Relay access denied" in text
    # Worst domain first.
    assert text.index("example.com") < text.index("good.org")
