"""Units running and enabled, ports listening where the layout puts them."""

import pytest
from conftest import APP, PORT


def test_dyno_units_are_running_and_enabled(site, hosts):
    assert site.unit_hosts(), "no dyno unit expected anywhere: inventory groups are wrong"
    for name, unit in site.unit_hosts():
        service = hosts[name].service(unit)
        assert service.is_running, f"{unit} on {name}"
        assert service.is_enabled, f"{unit} on {name}"


def test_no_dyno_unit_runs_where_the_layout_says_none(site, hosts):
    for name in site.app_hosts:
        listed = hosts[name].check_output(f"systemctl list-units --all --plain --no-legend '{APP}-w*.service'")
        present = sorted(line.split()[0] for line in listed.splitlines() if line.strip())
        assert present == sorted(site.units(name)), name


@pytest.mark.parametrize("unit", ["redis-server.service", "postgresql.service"])
def test_data_services_are_running_and_enabled(site, hosts, unit):
    service = hosts[site.data_host].service(unit)
    assert service.is_running and service.is_enabled


def test_router_is_running_and_enabled(site, hosts):
    for name in site.group("web"):
        service = hosts[name].service("nginx.service")
        assert service.is_running and service.is_enabled, name


def test_router_and_web_dyno_listen(site, hosts):
    for name in site.group("web"):
        assert hosts[name].socket("tcp://0.0.0.0:80").is_listening, f"nginx on {name}"
        assert hosts[name].socket(f"tcp://127.0.0.1:{PORT}").is_listening, f"the web dyno's $PORT on {name}"


def test_web_dyno_port_is_held_by_systemd(site, hosts):
    for name in site.group("web"):
        socket_unit = hosts[name].service(f"{APP}-web.socket")
        assert socket_unit.is_running and socket_unit.is_enabled, name
        assert socket_unit.systemd_properties["Listen"] == f"127.0.0.1:{PORT} (Stream)", name


def test_data_services_listen_on_loopback(site, hosts):
    data = hosts[site.data_host]
    assert data.socket("tcp://127.0.0.1:6379").is_listening
    assert data.socket("tcp://127.0.0.1:5432").is_listening


def test_data_services_are_not_on_every_interface(site, hosts):
    data = hosts[site.data_host]
    assert not data.socket("tcp://0.0.0.0:6379").is_listening
    assert not data.socket("tcp://0.0.0.0:5432").is_listening


def test_redis_refuses_clients_without_the_password(site, hosts):
    reply = hosts[site.data_host].run("redis-cli -h 127.0.0.1 ping")
    assert "NOAUTH" in reply.stdout + reply.stderr


def test_scheduled_jobs_run_on_beat_host_only(site, hosts):
    for name in site.app_hosts:
        timers = hosts[name].run(f"systemctl list-unit-files --no-legend '{APP}-job-*.timer'").stdout.strip()
        assert bool(timers) == (name == site.beat_host), name
