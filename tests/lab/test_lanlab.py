"""The LAN lab itself: reachability, shaping, and cleanup whatever happens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from support.lanlab import LanLab, namespaces, sweep_stale

pytestmark = pytest.mark.needs("netns")

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RECEIVER = r"""
import json, socket, time
s = socket.socket()
s.bind(("0.0.0.0", 5001))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
buf = bytearray(1 << 20)
n, first = 0, None
while k := c.recv_into(buf):
    first = first or time.monotonic()
    n += k
print(json.dumps({"bytes": n, "secs": time.monotonic() - first}), flush=True)
"""

SENDER = r"""
import socket, sys
left = int(sys.argv[2])
c = socket.create_connection((sys.argv[1], 5001))
chunk = b"x" * (1 << 18)
while left > 0:
    c.sendall(chunk[:left])
    left -= len(chunk)
c.close()
"""


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip() for line in out.stdout.splitlines()}


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def transfer_mbit(lab: LanLab, src: int, dst: int, size: int) -> float:
    """Goodput of one TCP transfer of ``size`` bytes from host ``src`` to ``dst``."""
    receiver = lab.run(dst, [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    assert receiver.stdout.readline().strip() == "ready"
    lab.exec(src, [sys.executable, "-c", SENDER, lab.hosts[dst].addr, str(size)], check=True)
    result = json.loads(receiver.stdout.readline())
    assert result["bytes"] == size
    return result["bytes"] * 8 / result["secs"] / 1e6


def test_three_hosts_reach_each_other():
    before = root_links()
    with LanLab(n_hosts=3) as lab:
        addrs = [h.addr for h in lab.hosts]
        assert len(set(addrs)) == 3
        assert len({a.rsplit(".", 1)[0] for a in addrs}) == 1
        for h in lab.hosts:
            others = [a for a in addrs if a != h.addr]
            rtts = lab.ping(h.index, *others)
            assert all(rtts[a] is not None for a in others), rtts
        assert lab.exec(0, ["ip", "-o", "addr", "show", "eth0"]).stdout.count(addrs[0]) == 1
        assert root_links() == before  # every link lives inside the lab's namespaces


def test_tbf_limits_throughput():
    # host 0 sits on a 100 Mbit/s link; host 2 is unshaped, for contrast
    with LanLab(n_hosts=3, per_host_rate={0: "100mbit"}) as lab:
        shaped = transfer_mbit(lab, 0, 1, 4_000_000)
        unshaped = transfer_mbit(lab, 2, 1, 4_000_000)
    assert 75 <= shaped <= 125, shaped
    assert unshaped > 2 * shaped, (unshaped, shaped)


ESCAPE = """
import subprocess
quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(subprocess.Popen(["sleep", "60"], start_new_session=True, **quiet).pid, flush=True)
"""


def test_cleanup_when_the_body_raises():
    before = root_links()
    with pytest.raises(RuntimeError, match="boom"), LanLab(n_hosts=2) as lab:
        made = [lab.switch, *(h.name for h in lab.hosts)]
        assert set(made) <= set(namespaces())
        sleeper = lab.run(1, ["sleep", "60"])
        # a grandchild in a session of its own escapes the process group, not the netns
        escaped = int(lab.exec(0, [sys.executable, "-c", ESCAPE], check=True).stdout)
        assert pid_alive(escaped)
        raise RuntimeError("boom")
    assert not set(made) & set(namespaces())
    assert sleeper.poll() is not None
    assert not pid_alive(escaped)
    assert root_links() == before


OWNER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {tests!r})
    from support.lanlab import LanLab
    lab = LanLab(n_hosts=2, prefix={prefix!r}).__enter__()
    sleeper = lab.run(1, ["sleep", "60"])
    print(json.dumps({{"names": [lab.switch] + [h.name for h in lab.hosts],
                       "sleeper": sleeper.pid}}), flush=True)
    time.sleep(60)
    """
)


def start_owner(prefix: str) -> tuple[subprocess.Popen[str], dict]:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER.format(tests=TESTS, prefix=prefix)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    return owner, json.loads(owner.stdout.readline())


def wait_dead(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not pid_alive(pid)


# Other runs of these tests may share the prefix concurrently: assert on our own names only.


def test_stale_sweeper_removes_a_crashed_run():
    prefix = "lslsweep"
    owner, info = start_owner(prefix)
    names = set(info["names"])
    try:
        assert names <= set(namespaces(prefix))
        assert not names & set(sweep_stale(prefix))  # its owner is alive: not stale
        assert names <= set(namespaces(prefix))
    finally:
        owner.kill()  # SIGKILL: no cleanup runs
        owner.wait()
    try:
        assert names <= set(namespaces(prefix))
        assert pid_alive(info["sleeper"])
        assert names <= set(sweep_stale(prefix))
        assert not names & set(namespaces(prefix))
        assert wait_dead(info["sleeper"])
    finally:
        sweep_stale(prefix)


def test_sigterm_to_the_owner_cleans_up():
    prefix = "lslterm"
    owner, info = start_owner(prefix)
    try:
        owner.send_signal(signal.SIGTERM)
        assert owner.wait(10) == -signal.SIGTERM  # cleaned up, then died of the signal as usual
        assert not set(info["names"]) & set(namespaces(prefix))
        assert wait_dead(info["sleeper"])
    finally:
        owner.kill()
        owner.wait()
        sweep_stale(prefix)
