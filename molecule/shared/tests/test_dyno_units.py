"""Heroku's dyno semantics and the sandbox as systemd properties of each dyno unit."""

import re

from conftest import APP, PORT, REPO, USER, record

from app.procfile import read_procfile

MB = 1024 * 1024


def test_units_stop_like_heroku(site, hosts):
    for name, unit in site.unit_hosts():
        props = hosts[name].service(unit).systemd_properties
        assert props["KillMode"] == "control-group", unit  # SIGTERM to every process, not only the main one
        assert props["KillSignal"] == "15", unit
        assert props["TimeoutStopUSec"] == "30s", unit
        assert props["SendSIGKILL"] == "yes", unit


def test_units_restart_on_any_exit(site, hosts):
    for name, unit in site.unit_hosts():
        props = hosts[name].service(unit).systemd_properties
        assert props["Restart"] == "always", unit
        assert props["StartLimitIntervalUSec"] in ("0", "infinity"), f"{unit} would give up restarting"


def test_units_are_capped_at_the_dyno_size_without_swap(site, hosts):
    for name, unit in site.unit_hosts():
        props = hosts[name].service(unit).systemd_properties
        assert int(props["MemoryMax"]) == 512 * MB, unit
        assert props["MemorySwapMax"] == "0", unit


def test_units_set_port_dyno_and_dyno_ram(site, hosts):
    for name, unit in site.unit_hosts():
        environment = hosts[name].service(unit).systemd_properties["Environment"]
        kind = unit.removeprefix(f"{APP}-").removesuffix(".service")
        assert f"PORT={PORT}" in environment.split(), unit
        assert f"DYNO={kind}.1" in environment.split(), unit
        assert "DYNO_RAM=512" in environment.split(), unit


def test_units_run_the_procfile_commands(site, hosts):
    procfile = read_procfile(REPO / "Procfile")
    for name, unit in site.unit_hosts():
        kind = unit.removeprefix(f"{APP}-").removesuffix(".service")
        exec_start = hosts[name].service(unit).systemd_properties["ExecStart"]
        assert f"exec {procfile[kind]}" in exec_start, unit


def test_units_are_sandboxed(site, hosts):
    expected = {
        "User": USER,
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "CapabilityBoundingSet": "",
    }
    for name, unit in site.unit_hosts():
        props = hosts[name].service(unit).systemd_properties
        found = {key: props.get(key, "") for key in expected}
        assert found == expected, unit


def _exposure(host, unit):
    output = host.check_output(f"systemd-analyze security --no-pager {unit}")
    return float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", output).group(1)), output


def test_app_units_exposure_is_at_most_3(site, hosts):
    units = [(name, unit) for name, unit in site.unit_hosts()]
    units += [(site.beat_host, f"{APP}-job-1.service")]
    for name, unit in units:
        exposure, output = _exposure(hosts[name], unit)
        record(f"exposure {unit}", exposure)
        assert exposure <= 3.0, f"{unit} on {name}: exposure {exposure}\n{output}"


def test_every_unit_the_roles_run_has_exposure_at_most_5(site, hosts):
    """Debian's own units the roles install or configure, sandboxed by drop-ins (nginx and PostgreSQL are
    9.6 "UNSAFE" as Debian ships them)."""
    units = [(name, "nftables.service") for name in hosts]
    units += [(name, "nginx.service") for name in site.group("web")]
    data = hosts[site.data_host]
    clusters = data.check_output("systemctl list-units --plain --no-legend 'postgresql@*.service'").split()
    units += [(site.data_host, unit) for unit in ["redis-server.service", "postgresql.service"] + clusters[:1]]
    assert any("postgresql@" in unit for _, unit in units), "no PostgreSQL cluster unit found"
    for name, unit in units:
        exposure, output = _exposure(hosts[name], unit)
        record(f"exposure {unit}", exposure)
        assert exposure <= 5.0, f"{unit} on {name}: exposure {exposure}\n{output}"
