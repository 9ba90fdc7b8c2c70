"""`trashseg doctor`, `--version` and `-v`/`--quiet`: what a bug report needs (no test reaches outside this machine)."""

from __future__ import annotations

import json
import logging
import socket

from tests.helpers import run_cli
from trashseg import __version__
from trashseg.doctor import reachable, report
from trashseg.machine import cpu_summary


def test_version_is_the_package_version(capsys):
    code, text = run_cli(["--version"], capsys)
    assert code == 0 and text.strip() == f"trashseg {__version__}"


def test_report_names_versions_cpu_weights_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TRASHSEG_CACHE", str(tmp_path))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.safetensors").write_bytes(b"x" * 2_000_000)
    sections = report(network=False, measure=False)
    assert sections["trashseg"]["version"] == __version__
    assert sections["libraries"]["torch"][0].isdigit()
    assert sections["CPU"]["model"] in cpu_summary()
    assert set(sections["CPU"]) >= {"avx2", "avx512_bf16", "amx_bf16"}
    assert all("installed" in v or "missing" in v for v in sections["offline ImageNet weights"].values())
    assert sections["caches"][f"trashseg ({tmp_path})"] == "2.0 MB"
    assert sections["hubs"] == {"not tried": "--offline"}


def test_hub_probe_tells_an_open_port_from_a_closed_one():
    with socket.socket() as server:  # loopback only: tests never reach outside this machine
        server.bind(("127.0.0.1", 0))
        server.listen()
        open_port = server.getsockname()[1]
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            closed_port = spare.getsockname()[1]  # bound, never listening: connections are refused
            found = reachable([("127.0.0.1", open_port), ("127.0.0.1", closed_port)], timeout=1)
    assert found[f"127.0.0.1:{open_port}"] == "reachable"
    assert found[f"127.0.0.1:{closed_port}"].startswith("not reachable")


def test_doctor_cli_prints_json_with_the_fastest_precision(capsys):
    code, text = run_cli(["doctor", "--offline", "--json"], capsys)
    assert code == 0, text
    sections = json.loads(text)
    assert sections["trashseg"]["version"] == __version__
    assert sections["CPU"]["fastest precision"].split()[0] in ("fp32", "bf16")


def test_verbosity_flags_set_what_the_log_shows(capsys):
    saved = logging.getLogger("trashseg").level
    log = logging.getLogger("trashseg.anything")
    try:
        for flags, shown, hidden in ((["-v"], "info line", "debug line"), (["-q"], "error line", "warning line")):
            code, _ = run_cli([*flags, "configs"], capsys)
            assert code == 0
            for level in ("debug", "info", "warning", "error"):
                getattr(log, level)(f"{level} line")
            err = capsys.readouterr().err
            assert shown in err and hidden not in err, (flags, err)
    finally:
        logging.getLogger("trashseg").setLevel(saved)  # the next tests log as by default
