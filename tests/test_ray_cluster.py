"""Ray on one machine, loopback only: a two-node cluster scores a tiny occbench-mini split with the local run's
numbers, a node killed mid-run is survived (its task runs again on the other node), and a driver killed with
``kill -9`` leaves no Ray process of its local instance behind. Every node runs with one CPU."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from occbench.evaluation.run import DatasetSpec, EvalConfig, MethodSpec, evaluate
from occbench.testing import descendants, method_package_env, process_alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SLOW = '''
import os
import time
from occbench.methods import OffboardMethod


class SlowMethod(OffboardMethod):
    name = "slow-ray-test"
    worker_memory_gb = 0.5
    description = "The onboard predictions, one every SLOW_RAY_TEST_S seconds (default 0.5)."

    def refine(self, sequence, targets):
        for t in targets:
            time.sleep(float(os.environ.get("SLOW_RAY_TEST_S", "0.5")))
            yield t, sequence.prediction(t)
'''

OCCBENCH = [sys.executable, "-c", "from occbench.cli import main; main()"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A slow method registered as an entry point: the driver and every Ray worker find it."""
    return method_package_env(
        tmp_path_factory.mktemp("site"), "slow_ray_test_method", SLOW, "slow-ray-test", "SlowMethod"
    )


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """An occbench-mini tree of 8 scans, 4 of them labelled (val split)."""
    from occbench.synth import MiniConfig, generate_mini

    cfg = MiniConfig(
        seed=5,
        scans={"08": 8},
        splits={"val": ("08",)},
        onboard=("voxformer-sim",),
        size="pico",
        label_every=2,
        lookahead=2,
        view_every=1,
        azimuths=256,
    )
    root = tmp_path_factory.mktemp("mini") / "m"
    generate_mini(root, cfg, progress=False, workers=1)
    return root


@pytest.fixture(scope="module")
def local_metrics(mini):
    """The reference: the same split scored inline, no Ray (the slow method returns the onboard predictions)."""
    r = evaluate(
        EvalConfig(
            dataset=DatasetSpec("mini", str(mini), "val", "voxformer-sim"), method=MethodSpec("onboard"), workers=1
        )
    )
    return json.loads(json.dumps(r.to_dict()["metrics"]))


@pytest.fixture(scope="module")
def cluster(env):
    """A head node and one more node, both on 127.0.0.1, one CPU each (their workers get ``env``'s path)."""
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "OMP_NUM_THREADS")}
    os.environ.update(PYTHONPATH=env["PYTHONPATH"], OMP_NUM_THREADS="1")
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    try:
        c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _listening() -> dict[int, str]:
    """Socket inode -> the address it listens on (TCP, IPv4 and IPv6)."""
    out = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A":  # LISTEN
                continue
            hexip = f[1].split(":")[0]
            raw = bytes.fromhex(hexip)
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # words in host order
            out[int(f[9])] = str(ipaddress.IPv6Address(raw) if v6 else ipaddress.IPv4Address(raw))
    return out


def _open_to_the_network(pids) -> dict[int, list[str]]:
    """The listening addresses of ``pids`` that are not loopback."""
    listening, out = _listening(), {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in listening:
                a = ipaddress.ip_address(listening[int(link[8:-1])])
                mapped = getattr(a, "ipv4_mapped", None)
                if not (a.is_loopback or (mapped is not None and mapped.is_loopback)):
                    out.setdefault(pid, []).append(str(a))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _running_task(pids) -> bool:
    return any(_cmdline(p).startswith("ray::_ray_call") for p in pids)


def _raylet(node) -> int:
    return node.all_processes["raylet"][0].process.pid


def _evaluate_cmd(mini, out, *extra):
    return OCCBENCH + [
        "evaluate",
        "--dataset",
        "mini",
        "--root",
        str(mini),
        "--onboard",
        "voxformer-sim",
        "--method",
        "slow-ray-test",
        "--executor",
        "ray",
        "-q",
        "-o",
        str(out),
        *extra,
    ]


def test_two_nodes_on_loopback_score_the_local_numbers(cluster, env, mini, local_metrics, tmp_path):
    out = tmp_path / "r.json"
    nodes = [cluster.head_node, *cluster.worker_nodes]
    cmd = _evaluate_cmd(mini, out, "-j", "2", "--address", cluster.address)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worked, exposed = set(), {}
    while proc.poll() is None:
        for node in nodes:
            if _running_task(descendants(_raylet(node))):
                worked.add(node.unique_id)
        exposed.update(_open_to_the_network(descendants(os.getpid())))  # the nodes and the driver
        time.sleep(0.1)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert not exposed, {p: (_cmdline(p)[:80], a) for p, a in exposed.items()}
    assert len(worked) == 2, "both nodes ran a job"
    r = json.loads(out.read_text())
    assert r["header"]["executor"] == "ray" and r["header"]["frames"] == 4
    assert r["metrics"] == local_metrics


def test_a_node_killed_mid_run_is_survived(cluster, env, mini, local_metrics, tmp_path):
    doomed = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    out = tmp_path / "r.json"
    e = {**env, "SLOW_RAY_TEST_S": "1.5"}  # a job of one or two frames runs long enough to be caught
    proc = subprocess.Popen(
        _evaluate_cmd(mini, out, "-j", "3", "--address", cluster.address),
        env=e,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = False
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if not killed and _running_task(descendants(_raylet(doomed))):
            cluster.remove_node(doomed, allow_graceful=False)  # its raylet, store and the running worker
            killed = True
        time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    assert killed, "no job ran on the node to kill"
    assert proc.returncode == 0, err
    r = json.loads(out.read_text())
    assert r["header"]["frames"] == 4 and r["metrics"] == local_metrics


def test_a_killed_driver_leaves_no_local_ray_process(env, mini, tmp_path):
    """``kill -9`` on a driver that started its own local instance: every Ray process it started is gone within
    a few seconds (Ray's agents alone would wait out a 60 s timeout), and none listened beyond loopback."""
    proc = subprocess.Popen(
        _evaluate_cmd(mini, tmp_path / "r.json", "-j", "1"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        seen: set[int] = set()
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            seen |= descendants(proc.pid)
            if _running_task(seen):
                break
            time.sleep(0.1)
        assert proc.poll() is None and _running_task(seen), proc.communicate()
        seen |= descendants(proc.pid)
        exposed = _open_to_the_network(seen)
        assert not exposed, {p: (_cmdline(p)[:80], a) for p, a in exposed.items()}
        ray_procs = {p: _cmdline(p)[:80] for p in seen if "ray" in _cmdline(p)}
        assert any("DashboardAgent" in c for c in ray_procs.values()), ray_procs  # the slowest to go
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and [p for p in ray_procs if process_alive(p)]:
            time.sleep(0.2)
        left = {p: c for p, c in ray_procs.items() if process_alive(p)}
        assert not left, f"left running {time.monotonic() - t0:.0f} s after the driver: {left}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupt_while_connecting_to_a_cluster_stops_at_once(env, mini, tmp_path, sig):
    """Something answers at ``--address`` but is not Ray: Ray's connect waits in native code for half a minute and
    more. A signal during that wait ends the command at once, with the interrupt's line and exit code."""
    import socket

    out = tmp_path / "r.json"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(60)
        port = listener.getsockname()[1]
        proc = subprocess.Popen(
            _evaluate_cmd(mini, out, "--address", f"127.0.0.1:{port}"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C as a terminal delivers it: a test run started in the background inherits SIGINT ignored, and
            # an ignored SIGINT stays ignored in the command (by design)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            held = [listener.accept()[0] for _ in range(2)]  # occbench's reachability check, then Ray's client
            time.sleep(1.0)  # inside Ray's wait for an answer
            assert proc.poll() is None, proc.communicate()
            t0 = time.monotonic()
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=20)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        for c in held:
            c.close()
    assert proc.returncode == 128 + sig, err
    assert took < 5, f"{took:.1f} s"
    name = "SIGTERM" if sig == signal.SIGTERM else "SIGINT (Ctrl-C)"
    assert f"occbench: stopped by {name}" in err, err
    assert "Traceback" not in err and "SIGTERM handler is not set" not in err, err
    assert not out.exists()


def test_sigterm_while_the_local_instance_starts_is_the_interrupt_and_leaves_nothing(env, mini, tmp_path):
    """``ray.init`` puts in a SIGTERM handler of its own (``sys.exit(15)``: exit 15, no message). A SIGTERM while the
    local instance starts gives exit 143 and the interrupt's line, and every Ray process started is gone."""
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        _evaluate_cmd(mini, out, "-j", "1"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        seen: set[int] = set()
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            seen |= descendants(proc.pid)
            if any("raylet" in _cmdline(p) for p in seen):  # the instance is starting
                break
            time.sleep(0.05)
        assert proc.poll() is None and seen, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        seen = {p for p in seen if "ray" in _cmdline(p)} | seen
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and [p for p in seen if process_alive(p)]:
            time.sleep(0.2)
        left = {p: _cmdline(p)[:80] for p in seen if process_alive(p)}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 143, err
    assert "occbench: stopped by SIGTERM" in err, err
    assert not left, left
    assert not out.exists()
