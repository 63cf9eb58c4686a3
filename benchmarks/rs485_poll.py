"""Round-trip time of a Pylontech 0x42 poll over a PTY pair, next to a real wire's byte time.

``bmslink rs485 serve`` runs in its own process on one end of a null-modem PTY
pair (as it would on a Raspberry Pi); this process polls the other end 1,000
times with bmslink's poller (request, wait for the frame, verify, decode into a
BatteryState) and reports p50 and p99. The same is done with the peer library
``pylontech`` (Tomcat42/pylontech-python, installed by ``pip install .[bench]``)
when it is importable: its send, receive and analog-value decode.

A PTY moves bytes as fast as the kernel copies them, so the figure is the
software's own cost; the time the same bytes need on a real RS485 line at 9600
and 115200 baud (10 bits per byte, 8N1) is printed beside it for scale.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from bmslink.links.serial_port import SerialLink, bytes_on_wire_s
from bmslink.roles.rs485_inverter import SerialTransport
from bmslink.rs485.frame import parse_frame
from bmslink.rs485.pylontech import decode_response, request
from bmslink.sim.nullmodem import NullModem

POLLS = 1000
BAUD = 115200


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(poll: Callable[[], object], n: int) -> list[float]:
    for _ in range(20):  # warm up: imports, first opens, caches
        poll()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        poll()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    with NullModem() as modem:
        server = subprocess.Popen(
            [sys.executable, "-m", "bmslink", "rs485", "serve", "--port", modem.a_path,
             "--baud", str(BAUD), "--duration", "600"],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert server.stderr is not None
            server.stderr.readline()  # the banner: the port is open
            link = SerialLink(modem.b_path, BAUD, read_timeout_s=0.001)
            link.open()
            transport = SerialTransport(link)
            raw_request = request(0x42, 2).encode()
            answer_bytes = 0

            def ours() -> object:
                nonlocal answer_bytes
                raw = transport.exchange(raw_request, 1.0)
                assert raw is not None, "no answer"
                answer_bytes = len(raw)
                return decode_response(parse_frame(raw), 0x42)

            samples = timed(ours, POLLS)
            link.close()
            p50, p99 = percentiles(samples)
            peer = peer_samples(modem.b_path)
        finally:
            server.terminate()
            server.wait(10)

    wire = len(raw_request) + answer_bytes
    print(f"0x42 poll of one 16-cell module: {len(raw_request)} bytes out, {answer_bytes} back")
    for baud in (9600, 115200):
        wire_ms = bytes_on_wire_s(wire, baud) * 1000
        print(f"  same bytes on a real wire at {baud:>6} baud: {wire_ms:7.2f} ms")
    print(f"  bmslink over a PTY pair ({POLLS} polls): p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    if peer is not None:
        q50, q99 = percentiles(peer)
        print(f"  pylontech (peer) same server:          p50 {q50:.3f} ms, p99 {q99:.3f} ms")
        print(f"  ratio peer/bmslink p50: {q50 / p50:.2f}")
    else:
        print("  peer: pylontech not installed (pip install .[bench]); not measured")
    print(f"rs485: p50={p50:.3f} ms p99={p99:.3f} ms")


def peer_samples(port: str) -> list[float] | None:
    try:
        from pylontech import PylontechDecode, PylontechRS485  # type: ignore[import-untyped]
    except ImportError:
        return None
    peer = PylontechRS485(port, BAUD)
    # The peer drives RTS around each write for adapters that switch direction with it;
    # a PTY has no modem lines, so only that ioctl is skipped. Its I/O and parsing are as is.
    peer.rs485.ser._update_rts_state = lambda: None
    decoder = PylontechDecode()
    body = request(0x42, 2).encode()[1:-5]  # the peer adds ~, CHKSUM and CR itself

    def poll() -> object:
        peer.send(body)
        frames = peer.receive(timeout=1.0)
        assert frames, "peer: no answer"
        decoder.decode_header(frames[0])
        return decoder.decodeAnalogValue()

    try:
        return timed(poll, POLLS)
    finally:
        peer.close()


if __name__ == "__main__":
    main()
