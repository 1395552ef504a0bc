"""Extract definition files: the shipped ones load; a bad one fails naming the file and the field."""

import copy
import json

import pytest

from etl.errors import ConfigError
from etl.extracts import model
from etl.extracts.definition import DEFINITIONS_DIR, DefinitionError, load, load_all, select

GOOD = {
    "name": "sample", "version": 1, "doc": "test", "dataset": "5m", "sources": ["zabbix"],
    "items": [{"metric": "cpu", "keys": ["system.cpu.util"]}],
    "measures": [{"name": "avg_value", "type": "double", "sql": "sum(sum) / sum(count)"}],
    "facts": [{"table": "fact_sample_daily", "grain": "day", "dimensions": ["host", "item"]}],
}


def write(tmp_path, data, name="sample"):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_shipped_definitions_load_with_star_schema():
    defs = load_all()
    assert set(defs) >= {"capacity", "availability", "kcmm", "findings"}
    for d in defs.values():
        tables = model.all_tables(d)
        names = {t.name for t in tables}
        assert "dim_date" in names
        for t in tables:
            assert t.primary_key, f"{d.name}.{t.name} has no key"
            for column, ref, ref_col in t.foreign_keys:
                assert ref in names, f"{d.name}.{t.name}.{column} references missing {ref}"


def test_capacity_has_weekly_and_monthly_from_hourly_rollups():
    capacity = load(DEFINITIONS_DIR / "capacity.json")
    grains = {f.table: (f.grain, f.dataset) for f in capacity.facts}
    assert grains["fact_capacity_daily"] == ("day", "5m")
    assert grains["fact_capacity_weekly"] == ("week", "1h")
    assert grains["fact_capacity_monthly"] == ("month", "1h")


def test_good_sample_loads(tmp_path):
    d = load(write(tmp_path, GOOD))
    assert d.facts[0].measures[0].name == "avg_value"
    assert [c.name for c in model.fact_columns(d.facts[0])][:3] == ["host_key", "item_key", "date_key"]


def mutate(**changes):
    data = copy.deepcopy(GOOD)
    for path, value in changes.items():
        target = data
        keys = path.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        last = keys[-1]
        if value is KeyError:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize("data, where, reason", [
    (mutate(measures=KeyError), "measures", "is required"),
    (mutate(dataset="10m"), "dataset", "'10m' is not one of"),
    (mutate(facts__0__dimensions=["host", "item", "rack"]), "facts[0].dimensions[2]", "'rack' is not one of"),
    (mutate(measures__0__type="float"), "measures[0].type", "'float' is not one of"),
    (mutate(name="other"), "name", "differs from the file name"),
    (mutate(colour="red"), "colour", "unknown field"),
    (mutate(facts__0__dimensions=["item"]), "facts[0].dimensions", "needs 'host' too"),
    (mutate(facts__0__table="daily"), "facts[0].table", "must start with 'fact_'"),
    (mutate(facts__0__grain="year"), "facts[0].grain", "'year' is not one of"),
    (mutate(facts__0__dataset="raw"), "facts[0].dataset", "may only switch between the rollups"),
    (mutate(facts__0__measures=["p99"]), "facts[0].measures[0]", "'p99' is not a measure"),
    (mutate(version="1"), "version", "must be int"),
    (mutate(items=[]), "items", "needs at least one item rule"),
    (mutate(items__0__keys=[""]), "items[0].keys[0]", "non-empty string"),
    (mutate(measures__0__name="Avg Value"), "measures[0].name", "not a lower-case identifier"),
])
def test_bad_definition_names_file_and_field(tmp_path, data, where, reason):
    path = write(tmp_path, data)
    with pytest.raises(DefinitionError) as err:
        load(path)
    message = str(err.value)
    assert str(path) in message
    assert f": {where}: " in message
    assert reason in message


def test_duplicate_measure_is_refused(tmp_path):
    data = mutate()
    data["measures"].append(dict(data["measures"][0]))
    with pytest.raises(DefinitionError, match=r"measures: name 'avg_value' is used twice"):
        load(write(tmp_path, data))


def test_invalid_json_names_line(tmp_path):
    path = write(tmp_path, '{"name": "sample",\n "version": 1,,}')
    with pytest.raises(DefinitionError, match=r"sample\.json: line 2 column \d+: not valid JSON"):
        load(path)


def test_findings_time_column_must_be_an_input(tmp_path):
    data = json.loads((DEFINITIONS_DIR / "findings.json").read_text(encoding="utf-8"))
    data["name"] = "sample"
    data["time_column"] = "seen_at"
    with pytest.raises(DefinitionError, match="time_column: 'seen_at' is not one of the input columns"):
        load(write(tmp_path, data))


def test_select_unknown_name_lists_known(tmp_path):
    write(tmp_path, GOOD)
    assert [d.name for d in select("all", tmp_path)] == ["sample"]
    with pytest.raises(ConfigError, match=r"no extract definition named 'nope' .*known: sample"):
        select("nope", tmp_path)
