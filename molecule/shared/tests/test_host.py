"""The host as the base and app roles leave it: the unprivileged user, the release layout, the config vars."""

import pytest
from conftest import CONFIG_DIR, CURRENT, ENV_FILE, USER, VENV


def test_app_user_is_unprivileged_with_a_nologin_shell(site, hosts):
    for name in site.app_hosts:
        user = hosts[name].user(USER)
        assert user.exists, name
        assert user.shell == "/usr/sbin/nologin", name
        assert user.uid != 0 and user.uid < 1000, f"{name}: {USER} should be a system user, uid {user.uid}"


def test_config_vars_file_is_root_only_0600(site, hosts):
    for name in site.app_hosts:
        env_file = hosts[name].file(ENV_FILE)
        assert env_file.is_file, name
        assert (env_file.user, env_file.group, env_file.mode) == ("root", "root", 0o600), name


def test_config_vars_are_the_ones_heroku_sets(site, config_vars):
    for name in site.app_hosts:
        found = config_vars[name]
        assert len(found["DJANGO_SECRET_KEY"]) >= 50, name
        assert found["DJANGO_DEBUG"] == "false", name
        assert found["DYNO_LAYOUT"] == site.layout, name
        assert found["REDIS_URL"].startswith("redis://:"), name
        assert found["DATABASE_URL"].startswith("postgres://"), name
        assert "PORT" not in found and "DYNO" not in found, f"{name}: PORT and DYNO belong to the units"


def test_every_app_host_shares_one_secret_key(site, config_vars):
    assert len({config_vars[name]["DJANGO_SECRET_KEY"] for name in site.app_hosts}) == 1


def test_current_release_is_root_owned_and_read_only_to_the_app(site, hosts):
    for name in site.app_hosts:
        host = hosts[name]
        current = host.file(CURRENT)
        assert current.is_symlink, name
        release = host.file(current.linked_to)
        assert release.is_directory and release.user == "root" and release.mode == 0o755, name
        assert host.file(f"{current.linked_to}/{VENV}/bin/python").exists, f"{name}: no virtualenv"
        assert host.file(f"{current.linked_to}/staticfiles").is_directory, f"{name}: collectstatic did not run"
        assert host.run(f"runuser -u {USER} -- test -w {current.linked_to}").rc != 0, f"{name}: code is writable"


KEPT_SECRETS = ["/etc/redis/requirepass", "/etc/postgresql/double_boiler.password", f"{CONFIG_DIR}/DJANGO_SECRET_KEY"]


@pytest.mark.parametrize("secret_file", KEPT_SECRETS)
def test_generated_secrets_are_kept_root_only_on_the_data_host(site, hosts, secret_file):
    secret = hosts[site.data_host].file(secret_file)
    assert (secret.user, secret.mode) == ("root", 0o600)
    assert len(secret.content_string.strip()) >= 40


def test_every_app_host_has_the_secret_key_the_data_host_keeps(site, hosts, config_vars):
    kept = hosts[site.data_host].file(f"{CONFIG_DIR}/DJANGO_SECRET_KEY").content_string.strip()
    assert {config_vars[name]["DJANGO_SECRET_KEY"] for name in site.app_hosts} == {kept}
