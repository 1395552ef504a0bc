"""Grafana dashboards as code (grafana-foundation-sdk builders): definitions in definitions.py, the
datasources they use in datasources.py, `monetl dashboards build` writes the JSON and the
provisioning files under docker/grafana/, and es_request.py turns a panel query into the
Elasticsearch request Grafana would issue (for `monetl dashboards check` and the tests)."""
