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


# --------------------------------------------------------------------------------------------------
# every refusal is counted in the stream's statistics and summary (not only the first)
# --------------------------------------------------------------------------------------------------
def test_stream_summary_counts_every_refusal(tmp_path):
    path = synthetic_clip(20).save(tmp_path / "clip.npz")
    vmc_port, ll_port = closed_port(), closed_port()
    result = run_stream(StreamOptions(input=str(path), vmc=f"127.0.0.1:{vmc_port}",
                                      livelink=f"127.0.0.1:{ll_port}", delay=0.05), log=lambda m: None)
    ll, vmc = result.lateness["livelink"], result.lateness["vmc"]
    # one datagram per Live Link frame: each is refused, reported at the next send (the last one never is)
    assert ll.sent >= 30 and ll.sent - 2 <= ll.refused <= ll.sent and ll.errors == 0
    assert vmc.refused >= vmc.sent - 1 and vmc.errors == 0             # VMC: several bundles per frame
    lines = result.summary_lines()
    assert f"{ll.refused} datagrams refused (nothing listening on 127.0.0.1:{ll_port})" in lines[1], lines
    assert f"datagrams refused (nothing listening on 127.0.0.1:{vmc_port})" in lines[0]
    assert not any("send errors" in line for line in lines)


def test_refusals_stop_when_a_receiver_starts_and_each_run_counts_its_own():
    """A receiver that starts late: refusals are counted until it listens, then it gets the frames. Two
    paced runs over the same sender (as ``--ws-audio`` runs one per utterance) count their own refusals."""
    from bridge.livelink import LiveLinkSender
    from bridge.pacing import Pacer
    from bridge.stream import clip_frames

    port = closed_port()
    sender = LiveLinkSender("127.0.0.1", port, fps=30.0)
    warned = []
    first = Pacer([sender], delay_s=0.0, on_error=lambda n, m: warned.append(m)).run(clip_frames(synthetic_clip(10)))
    assert first["livelink"].refused >= 9 and first["livelink"].errors == 0 and len(warned) == 1
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", port))
    receiver.settimeout(2)
    try:
        second = Pacer([sender], delay_s=0.0).run(clip_frames(synthetic_clip(10)))
        got = [receiver.recv(2048) for _ in range(10)]
    finally:
        receiver.close()
        sender.close()
    assert second["livelink"].refused <= 1                  # at most the first run's last datagram's report
    assert second["livelink"].sent == 10 and len(got) == 10
