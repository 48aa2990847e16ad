"""UDP to a closed port (issue 15, item 9): the OS's ECONNREFUSED is reported once, sending goes on."""
import socket
import time

from bridge.stream import StreamOptions, run_stream
from bridge.udp import UdpDestination
from tests.bridge.helpers import synthetic_clip


def closed_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_refusal_is_raised_once_and_counted():
    d = UdpDestination("127.0.0.1", closed_port(), "VMC")
    raised = []
    for _ in range(20):
        try:
            d.sendto([b"a", b"b"])
        except ConnectionRefusedError as e:
            raised.append(e.strerror)
        time.sleep(0.005)
    d.close()
    assert len(raised) == 1 and "nothing is listening on 127.0.0.1:" in raised[0]
    assert d.refused >= 10                              # every later refusal is counted, not raised


def test_a_listening_receiver_gets_every_datagram_and_no_warning():
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("127.0.0.1", 0))
    r.settimeout(2)
    d = UdpDestination("127.0.0.1", r.getsockname()[1], "Live Link")
    for k in range(5):
        d.sendto([bytes([k])])
    assert [r.recv(10) for _ in range(5)] == [bytes([k]) for k in range(5)] and d.refused == 0
    d.close()
    r.close()


def test_stream_to_a_closed_port_says_so_once(tmp_path):
    path = synthetic_clip(15).save(tmp_path / "clip.npz")
    lines = []
    opts = StreamOptions(input=str(path), vmc=f"127.0.0.1:{closed_port()}", livelink=f"127.0.0.1:{closed_port()}",
                         delay=0.05)
    result = run_stream(opts, log=lines.append)
    said = [m for m in lines if "nothing is listening" in m]
    assert len(said) == 2, lines                         # once per output
    assert {m.split(":")[0] for m in said} == {"warning"} and result.lateness["vmc"].sent > 15
