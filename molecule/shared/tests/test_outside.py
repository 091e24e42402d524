"""The hosts as the internet sees them: a full TCP port scan of each test host from this machine (outside the
hosts), and the add-ons' ports reachable from the other app hosts only. Only ssh, and the router on web
hosts, may answer; the dyno's port is systemd's socket on loopback, reached by the router alone."""

import asyncio

import pytest
from conftest import PORT, address_of, record

SSH = 22


async def _probe(address, port, gate, timeout):
    """ "open" if the port accepts a connection, "closed" if it is refused, "silent" if nothing comes back in
    time. Any other error (no file descriptor left, no route) fails the scan rather than passing for closed."""
    async with gate:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout=timeout)
        except ConnectionRefusedError:
            return "closed"
        except TimeoutError:
            return "silent"
        writer.close()
        return "open"


async def _scan(address):
    gate = asyncio.Semaphore(200)  # well inside the default limit of 1024 open files
    ports = range(1, 65536)
    found = dict(zip(ports, await asyncio.gather(*(_probe(address, port, gate, 3) for port in ports)), strict=True))
    # A busy machine can lose a SYN: ask the silent ones again, patiently (the firewall refuses, never drops).
    silent = [port for port, state in found.items() if state == "silent"]
    found.update(zip(silent, await asyncio.gather(*(_probe(address, port, gate, 15) for port in silent)), strict=True))
    return {port for port, state in found.items() if state == "open"}


def open_tcp_ports(address):
    """Every TCP port of `address` that accepts a connection (1-65535)."""
    return asyncio.run(_scan(address))


@pytest.fixture(scope="module")
def scans(site):
    found = {name: open_tcp_ports(address_of(name)) for name in sorted(set(site.app_hosts + [site.data_host]))}
    for name, ports in found.items():
        record(f"open TCP ports of {name} from outside", sorted(ports))
    return found


def test_only_ssh_and_the_router_answer_from_outside(site, scans):
    for name, ports in scans.items():
        expected = {SSH}
        if name in site.group("web"):
            expected |= {80}
            if site.hostvars[name].get("router_tls_certificate"):
                expected |= {443}
        assert ports == expected, f"{name}: open from outside {sorted(ports)}, expected {sorted(expected)}"


def test_dyno_port_is_on_loopback_only(site, hosts):
    for name in site.group("web"):
        assert hosts[name].socket(f"tcp://127.0.0.1:{PORT}").is_listening, name
        assert not hosts[name].socket(f"tcp://0.0.0.0:{PORT}").is_listening, name


def test_addons_answer_the_other_app_hosts_only(site, hosts):
    others = [name for name in site.app_hosts if name != site.data_host]
    if not others:
        pytest.skip("one host runs everything: the add-ons listen on loopback only")
    data_address = address_of(site.data_host)
    probe = "python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)' %s %s"
    for name in others:
        for port in (5432, 6379):
            reached = hosts[name].run(probe, data_address, str(port))
            assert reached.rc == 0, f"{name} cannot reach {site.data_host}:{port}: {reached.stderr}"
