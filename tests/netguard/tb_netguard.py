"""A network guard for the test suite: every Python process of a test run refuses, and records, a socket beyond the
loopback.

It is a PEP 578 audit hook on the ``socket.*`` events: a connect, bind or sendto to an address outside the loopback
(127.0.0.0/8, ::1) and a name lookup of anything but ``localhost`` or an address literal are refused as an offline
machine would refuse them (``OSError`` ENETUNREACH, ``socket.gaierror``) and appended as one JSON line to the file
named by :data:`LOG_VARIABLE`. The test suite's conftest installs it in the pytest process and, through
``sitecustomize`` on ``PYTHONPATH``, in every Python process a test starts (workers, servers, Ray's own processes),
then fails the test, and the session, that left a line. Binary programs (Ray's raylet and GCS) are not Python: the
Ray test checks their sockets with ``psutil`` instead.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import sys
import threading
import traceback

LOG_VARIABLE = "TROJANBENCH_NETGUARD_LOG"
STACK_FRAMES = 40
"""Frames kept per record: Ray's and asyncio's call chains run deep before they reach a socket."""

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_state = threading.local()


def is_loopback(host) -> bool:
    """True for a loopback address literal or name (and for no host at all, as in ``getaddrinfo(None, port)``)."""
    if host in (None, "", b""):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = host.strip("[]").split("%")[0]
    if host.lower() in LOCAL_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1, as an IPv6 socket shows an IPv4 peer
    return (mapped or address).is_loopback


def is_address_literal(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%")[0])
        return True
    except ValueError:
        return False


def violation(event: str, args: tuple) -> str | None:
    """What ``event`` would reach beyond the loopback (``None`` if nothing)."""
    if event in ("socket.connect", "socket.bind", "socket.sendto"):
        sock, address = args[0], args[-1]
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return None
        return None if is_loopback(address[0]) else f"{address[0]}:{address[1]}"
    if event == "socket.getaddrinfo":
        host = args[0]
        return None if is_loopback(host) or is_address_literal(host) else f"lookup of {host!r}"
    if event in ("socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
        host = args[0]
        return None if is_loopback(host) else f"lookup of {host!r}"
    if event == "socket.getnameinfo":
        return None if is_loopback(args[0][0]) else f"reverse lookup of {args[0][0]!r}"
    return None


def record(event: str, target: str) -> None:
    """Append one record (this process, the call stack) to the log :data:`LOG_VARIABLE` names."""
    stack = traceback.format_list(traceback.extract_stack(limit=STACK_FRAMES)[:-1])
    line = json.dumps({"pid": os.getpid(), "argv": sys.argv[:4], "event": event, "target": target,
                       "stack": "".join(stack)})
    with open(os.environ[LOG_VARIABLE], "a", encoding="utf-8") as log:
        log.write(line + "\n")


def _hook(event: str, args: tuple) -> None:
    if not event.startswith("socket.") or getattr(_state, "busy", False):
        return
    target = violation(event, args)
    if target is None:
        return
    _state.busy = True
    try:
        record(event, target)
    finally:
        _state.busy = False
    if event.startswith("socket.get"):
        raise socket.gaierror(socket.EAI_NONAME, f"network guard: {target} refused in a test run")
    raise OSError(errno.ENETUNREACH, f"network guard: {event} to {target} refused in a test run")


def install() -> None:
    """Add the hook to this process (once; a hook cannot be removed) if :data:`LOG_VARIABLE` names a log."""
    if os.environ.get(LOG_VARIABLE) and not getattr(sys, "_trojanbench_netguard", False):
        sys._trojanbench_netguard = True
        sys.addaudithook(_hook)


def read(path: str, start: int = 0) -> tuple[list[dict], int]:
    """The records from byte ``start`` of the log on, and the offset its end."""
    try:
        with open(path, "rb") as log:
            log.seek(start)
            data = log.read()
    except FileNotFoundError:
        return [], start
    complete = data[:data.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()], start + len(complete)


def describe(records: list[dict]) -> str:
    """One paragraph per record: what was refused, in which process, from where."""
    return "\n\n".join(f"{r['event']} to {r['target']} in pid {r['pid']} ({' '.join(map(str, r['argv']))}):\n"
                       f"{r['stack']}" for r in records)


def descendants(pid: int) -> set[int]:
    """The processes started, directly or not, by ``pid`` (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _address(hex_address: str) -> str:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 16:  # IPv6: four 32-bit words, each little-endian
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        return f"[{ipaddress.IPv6Address(raw)}]:{int(port, 16)}"
    return f"{ipaddress.IPv4Address(raw[::-1])}:{int(port, 16)}"


def inet_sockets(pids: set[int]) -> list[tuple[int, str, str, str]]:
    """``(pid, protocol, local, remote)`` of every TCP/UDP socket the processes ``pids`` hold open (Linux)."""
    owner: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    owner[link[8:-1]] = pid
        except OSError:  # the process ended meanwhile
            continue
    found = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/net/{protocol}", encoding="utf-8") as table:
            for row in table.read().splitlines()[1:]:
                fields = row.split()
                if fields[9] in owner:
                    found.append((owner[fields[9]], protocol, _address(fields[1]), _address(fields[2])))
    return found


def beyond_loopback(sockets: list[tuple[int, str, str, str]]) -> list[tuple[int, str, str, str]]:
    """The sockets bound to, or connected to, an address outside the loopback."""
    def outside(address: str) -> bool:
        host, port = address.rsplit(":", 1)
        return not is_loopback(host) and not (ipaddress.ip_address(host.strip("[]")).is_unspecified and port == "0")
    return [s for s in sockets if outside(s[2]) or outside(s[3])]
