"""Demo stage: the local Airflow scheduler runs zabbix_metrics for real, through the REST API v2.

Airflow is started with `MONETL_DAGS_START` a few intervals before now, so unpausing the DAG makes
the scheduler catch up only those 1-3 five-minute intervals instead of everything since the
default start date. The DAG is paused again afterwards so the demo machine does not keep ingesting.
No airflow import here: the API is plain HTTP."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import urllib.error
import urllib.request

from etl.config import Settings
from etl.errors import ServiceError

log = logging.getLogger(__name__)

DAG_ID = "zabbix_metrics"
# How far before now catch-up starts: a few 5-minute intervals, so a run completes soon.
LEAD = dt.timedelta(minutes=15)
# A running Airflow whose catch-up start is older than this is restarted (else unpausing would
# replay every interval since then).
MAX_START_AGE = dt.timedelta(minutes=30)
RUN_TIMEOUT_S = 240.0
PARSE_TIMEOUT_S = 180.0
# Unpaused this long with nothing queued means no interval is due: re-run the newest one instead.
RERUN_AFTER = dt.timedelta(seconds=20)


def demo_start(now: dt.datetime) -> dt.datetime:
    """`LEAD` before `now`, rounded down to 5 minutes (the cron grid)."""
    start = now.astimezone(dt.timezone.utc) - LEAD
    return start.replace(minute=start.minute - start.minute % 5, second=0, microsecond=0)


class AirflowApi:
    """The few REST API v2 calls the stage needs, with a JWT from the simple auth manager."""

    def __init__(self, url: str, username: str, password: str):
        self.url = url
        self._token = self._post_json("/auth/token", {"username": username, "password": password},
                                      auth=False)["access_token"]

    def _request(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            # The body names the problem; the request never carries the password except to /auth.
            raise ServiceError(f"Airflow API {method} {path}: HTTP {exc.code} "
                               f"{exc.read()[:300].decode(errors='replace')}") from None

    def _post_json(self, path: str, body: dict, auth: bool = True) -> dict:
        return self._request("POST", path, body, auth=auth)

    def post(self, path: str, body: dict) -> dict:
        return self._request("POST", path, body)

    def get(self, path: str) -> dict:
        return self._request("GET", path)

    def patch(self, path: str, body: dict) -> dict:
        return self._request("PATCH", path, body)


def _parse_ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _running_start(service) -> dt.datetime | None:
    """MONETL_DAGS_START the running Airflow was started with (from its process environment)."""
    try:
        pid = int(service.pid_file.read_text().strip())
        environ = (open(f"/proc/{pid}/environ", "rb").read()).split(b"\0")
    except (OSError, ValueError):
        return None
    for item in environ:
        if item.startswith(b"MONETL_DAGS_START="):
            try:
                start = dt.datetime.fromisoformat(item.split(b"=", 1)[1].decode())
            except ValueError:
                return None
            return start if start.tzinfo else start.replace(tzinfo=dt.timezone.utc)
    return None


def ensure_airflow(settings: Settings, now: dt.datetime):
    """Airflow up with a catch-up start at most `MAX_START_AGE` old; returns (service, start, how)
    with how = "already running" | "started" | "restarted"."""
    from etl import services

    service = services.get("airflow", settings)
    if service.healthy():
        running = _running_start(service)
        if running is not None and now - running <= MAX_START_AGE:
            return service, running, "already running"
        # Started with an older (or the default) start: unpausing would replay every interval
        # since then, so restart it with a recent one.
        service.stop()
        how = "restarted"
    else:
        how = "started"
    start = demo_start(now)
    # Inherited by the Airflow processes at spawn (with every other MONETL_* setting), so the
    # DAG files parse with this start and the tasks reach the same local services.
    os.environ["MONETL_DAGS_START"] = start.isoformat()
    return services.ensure("airflow", settings), start, how


def _wait(check, timeout: float, what: str, interval: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def run_demo(settings: Settings) -> list[str]:
    t0 = time.monotonic()
    now = dt.datetime.now(dt.timezone.utc)
    service, start, how = ensure_airflow(settings, now)
    # The run to show: one whose data interval lies within the last `LEAD` (a catch-up start kept
    # from an earlier demo may be older than that).
    recent = max(start, demo_start(now))
    password = json.loads(service.password_file.read_text())["admin"]
    api = AirflowApi(service.url, "admin", password)

    def monetl_dags() -> list[dict]:
        dags = api.get("/api/v2/dags?limit=100&tags=monetl")["dags"]
        return dags if any(d["dag_id"] == DAG_ID for d in dags) else []

    dags = _wait(monetl_dags, PARSE_TIMEOUT_S, f"{DAG_ID} parsed by the dag-processor")

    def parsed_with_start() -> bool:
        # Until the dag-processor has re-parsed the file with this start, the metadata DB may still
        # hold a next run computed from an older start: unpausing then would replay from there.
        details = api.get(f"/api/v2/dags/{DAG_ID}/details")
        return _parse_ts(details.get("start_date")) == start

    _wait(parsed_with_start, PARSE_TIMEOUT_S, f"{DAG_ID} re-parsed with start {start:%H:%M}Z")
    errors = api.get("/api/v2/importErrors?limit=100")
    unpaused_at = dt.datetime.now(dt.timezone.utc)
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    cleared: list[str] = []
    try:
        def fresh_success() -> dict | None:
            runs = [r for r in api.get(f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=-logical_date&limit=20")["dag_runs"]
                    if (_parse_ts(r.get("data_interval_start")) or recent) >= recent]
            ended_now = [r for r in runs if (_parse_ts(r.get("end_date")) or unpaused_at) >= unpaused_at]
            for run in ended_now:
                if run["state"] == "success":
                    return run
            failed = [r["dag_run_id"] for r in ended_now if r["state"] == "failed"]
            if failed:
                raise ServiceError(f"{DAG_ID} run(s) failed: {', '.join(failed)}; "
                                   f"see the task logs in {service.url}")
            idle = not any(r["state"] in ("queued", "running") for r in runs)
            settled = dt.datetime.now(dt.timezone.utc) - unpaused_at > RERUN_AFTER
            done_before = [r for r in runs if r["state"] == "success"]
            if idle and settled and done_before and not cleared:
                # No new interval due yet (a demo minutes ago ran it): have the scheduler run the
                # newest recent interval again; ids make the re-run overwrite, never double.
                run_id = done_before[0]["dag_run_id"]
                api.post(f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
                         {"dry_run": False, "dag_run_id": run_id, "only_failed": False,
                          "reset_dag_runs": True})
                cleared.append(run_id)
            return None

        run = _wait(fresh_success, RUN_TIMEOUT_S, f"a successful {DAG_ID} run since {recent:%H:%M}Z")
    except BaseException:
        # Pause on the way out, but a failing pause must not hide why the stage failed.
        try:
            api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": True})
        except ServiceError as exc:
            log.warning("could not pause %s again: %s", DAG_ID, exc)
        raise
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": True})
    summary = _xcom_summary(api, run["dag_run_id"])
    when = ("re-run during this stage (no new interval was due yet)" if run["dag_run_id"] in cleared
            else "run during this stage")
    error_files = [e.get("filename") for e in errors.get("import_errors", [])]
    lines = [
        f"Airflow {how}, catch-up start {start:%Y-%m-%dT%H:%MZ} (MONETL_DAGS_START); "
        f"{len(dags)} monetl DAGs, {errors.get('total_entries', 0)} import errors"
        + (f": {', '.join(map(str, error_files))}" if error_files else ""),
        f"{DAG_ID} run {run['dag_run_id']}: {run['state']}, data interval "
        f"{run['data_interval_start']} -> {run['data_interval_end']}, {when}",
    ]
    if summary:
        lines.append("ingest XCom: " + ", ".join(
            f"{key} {summary[key]}" for key in ("points_read", "points_loaded", "points_quarantined",
                                                "already_stored", "overlap_settled", "indices", "seconds") if key in summary))
    lines += [
        f"DAG paused again; {time.monotonic() - t0:.0f}s for this stage",
        f"UI {service.url} (user admin, password in {service.password_file})",
    ]
    return lines


def _xcom_summary(api: AirflowApi, run_id: str) -> dict | None:
    """The ingest task's return value (the run summary), or None if the API does not give it."""
    from urllib.parse import quote

    try:
        entry = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"
                        "/taskInstances/ingest/xcomEntries/return_value?deserialize=true")
    except ServiceError:
        return None
    value = entry.get("value")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {"value": value}
    return value if isinstance(value, dict) else None
