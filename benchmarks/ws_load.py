"""WebSocket stream under load: N clients on loopback for S seconds at the model's 30 fps.

    python benchmarks/ws_load.py [--clients 100] [--seconds 60] [--fps 30] [--stalled 1] [--client-procs 4]
                                 [--per-client]

The server (:class:`bridge.ws_server.FrameBroadcaster`, paced by :class:`bridge.pacing.Pacer`, frames of a
synthetic clip) runs in this process; the clients run in ``--client-procs`` other processes (one asyncio
loop each, the ``websockets`` client), plus ``--stalled`` clients that complete the handshake and never
read. Bounded: loopback only, at most 1000 clients and 600 seconds. The latency includes the client
processes' own delay in reading: on a machine without spare cores it measures them as much as the server;
the server-side numbers (drops, RSS, pacer lateness) do not depend on it.

Prints a table: frames delivered and dropped per client (summarised; every client with ``--per-client``),
latency (client receive time minus the frame's scheduled send time ``t0 + time``, both
``time.perf_counter``, i.e. CLOCK_MONOTONIC, shared by the two processes) p50/p99 over all frames and the
worst client's p99, the stalled clients' drops, and the server's RSS (start, end, peak).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MAX_CLIENTS, MAX_SECONDS = 1000, 600


def rss_kb(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


# ------------------------------------------------------------------------------------------ clients
async def _client(url: str, t0_box: list, out: dict, stop: asyncio.Event) -> None:
    import msgpack
    from websockets.asyncio.client import connect
    lat: list[float] = []
    n = 0
    async with connect(url, compression=None, max_size=None, open_timeout=60) as ws:
        out["port"] = ws.local_address[1]
        out["connected"] = True
        try:
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                now = time.perf_counter()
                msg = msgpack.unpackb(data)
                if msg.get("type") == "frame":
                    n += 1
                    if t0_box:
                        lat.append((now - (t0_box[0] + msg["time"])) * 1000.0)
                elif msg.get("type") == "end":
                    break
        except Exception as e:  # report, do not crash the other clients
            out["error"] = repr(e)
    out["frames"] = n
    out["latency_ms"] = lat


def _stalled(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    return s


async def client_main(port: int, clients: int, stalled: int) -> None:
    url = f"ws://127.0.0.1:{port}/"
    stalled_socks = [_stalled(port) for _ in range(stalled)]
    t0_box: list = []
    stop = asyncio.Event()
    outs = [{} for _ in range(clients)]
    tasks = [asyncio.create_task(_client(url, t0_box, o, stop)) for o in outs]
    while sum(1 for o in outs if o.get("connected")) < clients:
        await asyncio.sleep(0.05)
    print(json.dumps({"ready": True, "stalled_ports": [s.getsockname()[1] for s in stalled_socks]}), flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)      # t0 from the server process
    t0_box.append(float(line))
    await asyncio.gather(*tasks)
    print(json.dumps({"clients": outs}), flush=True)
    for s in stalled_socks:
        s.close()


# ------------------------------------------------------------------------------------------- server
def server_main(a: argparse.Namespace) -> int:
    from bridge.pacing import Pacer
    from bridge.ws_server import FrameBroadcaster
    from motion.frames import MotionFrame

    rss_start = rss_kb()
    ws = FrameBroadcaster("127.0.0.1", 0, fps=a.fps, max_clients=a.clients + a.stalled + 8,
                          log=lambda m: None).start()
    procs_n = max(1, min(a.client_procs, a.clients))
    shares = [a.clients // procs_n + (1 if i < a.clients % procs_n else 0) for i in range(procs_n)]
    procs = [subprocess.Popen([sys.executable, __file__, "--client-process", str(ws.port), "--clients", str(k),
                               "--stalled", str(a.stalled if i == 0 else 0)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for i, k in enumerate(shares)]
    stalled_ports = set()
    for proc in procs:
        stalled_ports |= set(json.loads(proc.stdout.readline())["stalled_ports"])

    n = int(round(a.seconds * a.fps))
    rng = np.random.default_rng(0)
    face = rng.random((64, 52)).astype(np.float32)
    rot = np.tile(np.float32([0, 0, 0, 1]), (55, 1))
    frames = (MotionFrame(i, i / a.fps, face[i % 64], rot, np.zeros(3, np.float32)) for i in range(n))
    pacer = Pacer([ws], source_fps=a.fps)
    t0 = time.perf_counter() + 0.5
    for proc in procs:
        proc.stdin.write(f"{t0!r}\n")
        proc.stdin.flush()
    stats = pacer.run(frames, start=t0)["ws"]
    ws.publish_end(n)
    rss_end, rss_peak = rss_kb(), rss_kb("VmHWM")
    result = {"clients": []}
    for proc in procs:
        result["clients"] += json.loads(proc.stdout.readline())["clients"]
        proc.wait(timeout=60)
    server_clients = {int(c.address.rsplit(":", 1)[1]): c for c in ws.stats.clients}
    ws.stop()

    rows = []
    for i, c in enumerate(result["clients"]):
        sc = server_clients.get(c.get("port"))
        lat = np.asarray(c.get("latency_ms", []))
        rows.append((i, c.get("frames", 0), sc.dropped if sc else -1,
                     float(np.percentile(lat, 50)) if len(lat) else float("nan"),
                     float(np.percentile(lat, 99)) if len(lat) else float("nan"), c.get("error")))
    all_lat = np.concatenate([np.asarray(c.get("latency_ms", [])) for c in result["clients"]] or [np.zeros(0)])
    delivered = np.array([r[1] for r in rows])
    dropped = np.array([r[2] for r in rows])
    stalled_drops = [c.dropped for p, c in server_clients.items() if p in stalled_ports]

    print(f"ws_load: {a.clients} clients in {procs_n} processes (+{a.stalled} stalled) x {a.seconds:g} s "
          f"at {a.fps:g} fps on loopback, "
          f"{n} frames published (pacer: {stats.sent} sent, {stats.skipped} skipped, "
          f"|lateness| p99 {stats.percentile(99):.2f} ms)")
    print()
    print("| what | value |")
    print("|---|---|")
    print(f"| frames delivered per client: min / median / max | {delivered.min()} / {int(np.median(delivered))} / {delivered.max()} (of {stats.sent} published) |")
    print(f"| frames dropped per client (server count): min / median / max | {dropped.min()} / {int(np.median(dropped))} / {dropped.max()} |")
    print(f"| clients that lost any frame | {int((delivered < stats.sent).sum())} |")
    print(f"| latency p50 / p99 over all frames (ms) | {np.percentile(all_lat, 50):.2f} / {np.percentile(all_lat, 99):.2f} |")
    print(f"| worst client's p99 latency (ms) | {np.nanmax([r[4] for r in rows]):.2f} |")
    print(f"| stalled clients: frames dropped | {stalled_drops} |")
    print(f"| server RSS start / end / peak (MiB) | {rss_start / 1024:.1f} / {rss_end / 1024:.1f} / {rss_peak / 1024:.1f} |")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"| machine load average (1, 5, 15 min) | {' '.join(load)} on {os.cpu_count()} CPUs |")
    errors = [r for r in rows if r[5]]
    if errors:
        print(f"| client errors | {len(errors)}: {errors[0][5]} |")
    if a.per_client:
        print()
        print("| client | delivered | dropped | p50 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for i, d, dr, p50, p99, _ in rows:
            print(f"| {i} | {d} | {dr} | {p50:.2f} | {p99:.2f} |")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--stalled", type=int, default=1, help="extra clients that never read")
    ap.add_argument("--client-procs", type=int, default=4, help="processes the clients run in")
    ap.add_argument("--per-client", action="store_true", help="print every client's row")
    ap.add_argument("--client-process", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not (1 <= a.clients <= MAX_CLIENTS and 0 < a.seconds <= MAX_SECONDS and 0 <= a.stalled <= 10):
        ap.error(f"--clients 1..{MAX_CLIENTS}, --seconds up to {MAX_SECONDS}, --stalled 0..10")
    if a.client_process is not None:
        asyncio.run(client_main(a.client_process, a.clients, a.stalled))
        return 0
    return server_main(a)


if __name__ == "__main__":
    raise SystemExit(main())
