"""site.yml stops before the Nuxeo nodes when a host failed in an earlier play, and the report says so without
blaming the host the stop happened to run on."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import yaml

from nxprovision.commands import report
from nxprovision.runevents import STOP_PLAY
from nxprovision.runner import Failure, RunResult

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "playbooks" / "site.yml"


def site_plays() -> list[dict]:
    return yaml.safe_load(SITE.read_text())


def gate_play() -> dict:
    return next(p for p in site_plays() if p.get("name") == STOP_PLAY)


def test_the_stop_comes_right_before_the_nuxeo_nodes_and_stops_every_host() -> None:
    names = [p.get("name") for p in site_plays()]
    assert names.index(STOP_PLAY) == names.index("Nuxeo nodes") - 1
    gate = gate_play()
    assert gate["hosts"] == "all"
    assert gate["any_errors_fatal"] is True
    assert "always" in gate["tags"]  # a run limited by tags (--tags role::kafka,role::nuxeo) stops too
    assert gate.get("gather_facts") is False


def run_gate(tmp_path: Path, failing: list[str]) -> subprocess.CompletedProcess[str]:
    """The gate play of site.yml between a play where `failing` hosts fail and a play standing for Nuxeo's."""
    inv = tmp_path / "inv.ini"
    inv.write_text(
        "[kafka]\nkafka1\nkafka2\n[nuxeo]\nfront1\n[all:vars]\nansible_connection=local\n"
        f"ansible_python_interpreter={sys.executable}\n"
    )
    marker = tmp_path / "nuxeo-play-ran"
    playbook = [
        {"name": "Kafka brokers", "hosts": "kafka", "gather_facts": False,
         "tasks": [{"name": "Break", "ansible.builtin.fail": {"msg": "broken"},
                    "when": f"inventory_hostname in {failing!r}"}]},
        gate_play(),
        {"name": "Nuxeo nodes", "hosts": "nuxeo", "gather_facts": False,
         "tasks": [{"name": "Mark", "ansible.builtin.file": {"path": str(marker), "state": "touch"}}]},
    ]
    pb = tmp_path / "pb.yml"
    pb.write_text(yaml.safe_dump(playbook, sort_keys=False))
    bin_dir = Path(sys.executable).parent
    return subprocess.run([str(bin_dir / "ansible-playbook"), "-i", str(inv), str(pb)], capture_output=True,
                          text=True, timeout=120, env={"ANSIBLE_NOCOLOR": "1", "PATH": str(bin_dir) + ":/usr/bin:/bin",
                                                       "HOME": str(tmp_path)})


def test_a_failed_broker_keeps_the_nuxeo_play_from_running(tmp_path: Path) -> None:
    r = run_gate(tmp_path, ["kafka1"])
    assert r.returncode != 0, r.stdout
    assert not (tmp_path / "nuxeo-play-ran").exists(), r.stdout
    assert "stopped before the Nuxeo nodes and the load balancers: kafka1 did not come through" in r.stdout, r.stdout
    assert "once it is fixed" in r.stdout


def test_without_a_failure_the_gate_lets_the_run_through(tmp_path: Path) -> None:
    r = run_gate(tmp_path, [])
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "nuxeo-play-ran").exists(), r.stdout


def test_the_report_names_the_failed_host_and_says_where_the_run_stopped(tmp_path: Path) -> None:
    msg = ("stopped before the Nuxeo nodes and the load balancers: kafka1 did not come through the plays above "
           "(failed or unreachable, see the first error); the hosts that converged stay so, and the same deploy "
           "resumes once it is fixed")
    result = RunResult(rc=2, status="failed", run_dir=tmp_path, recap={"kafka1": {"failed": 1}, "lb1": {"failed": 1}},
                       failures=[Failure("kafka1", "Download the Kafka release archive", "kafka", "HTTP 404 for x"),
                                 Failure("lb1", "Check that every host came through the plays above", "", msg,
                                         play=STOP_PLAY)])
    out = io.StringIO()
    assert report(result, out) == 1
    text = out.getvalue()
    assert "nxprovision: kafka1 failed at task 'kafka : Download the Kafka release archive': HTTP 404" in text
    assert f"nxprovision: {msg}\n" in text
    assert "lb1 failed" not in text
    assert Failure("lb1", "t", "", "m", play=STOP_PLAY).stop
    assert not Failure("kafka1", "t", "kafka", "m", play="Kafka brokers").stop


def test_a_refusal_stays_a_refusal_when_the_run_stops_before_nuxeo(tmp_path: Path) -> None:
    """nuxeo_versions.yml refuses a downgrade on the Nuxeo nodes; the stop that follows is no failure of its own."""
    refusal = "Nuxeo 2023.34 is older than the version this node runs: front1 (2023.35)"
    result = RunResult(rc=2, status="failed", run_dir=tmp_path, recap={},
                       failures=[Failure("front1", "Refuse an older Nuxeo version than a node runs", "", refusal,
                                         refused=True),
                                 Failure("lb1", "Check that every host came through the plays above", "",
                                         "stopped before the Nuxeo nodes and the load balancers: front1 ...",
                                         play=STOP_PLAY)])
    out = io.StringIO()
    assert report(result, out) == 2
    text = out.getvalue()
    assert f"nxprovision: REFUSED: {refusal}" in text
    assert "failed at task" not in text and "stopped before" not in text and "nothing was changed" in text
