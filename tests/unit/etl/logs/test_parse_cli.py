"""`monetl logs load/generate` argument wiring (the work itself is tested elsewhere)."""

from __future__ import annotations

from etl.cli import build_parser, main


def test_load_and_generate_are_registered():
    args = build_parser().parse_args(["logs", "load", "--format", "sshd", "--year", "2017", "--tz", "Asia/Shanghai",
                                      "--host", "bastion1", "a.log", "b.log"])
    assert (args.format, args.year, args.tz, args.host, args.files) == ("sshd", 2017, "Asia/Shanghai", "bastion1",
                                                                        ["a.log", "b.log"])
    args = build_parser().parse_args(["logs", "generate", "trade", "--start", "2026-11-25", "--end", "2026-11-26",
                                      "--seed", "3", "--out", "t.log"])
    assert (args.kind, args.seed, args.out) == ("trade", 3, "t.log")


def test_generate_command_writes_the_file(tmp_path, capsys):
    out = tmp_path / "trade.log"
    rc = main(["logs", "generate", "trade", "--start", "2026-11-25", "--end", "2026-11-26", "--seed", "9",
               "--rate", "0.2", "--out", str(out)])
    assert rc == 0
    n = int(capsys.readouterr().out.split()[1])
    assert n > 0 and len(out.read_text().splitlines()) == n + 2


def test_unknown_format_is_a_clear_error(capsys):
    assert main(["logs", "load", "--format", "bogus", "x.log"]) == 2
    assert "unknown log format 'bogus'" in capsys.readouterr().err
