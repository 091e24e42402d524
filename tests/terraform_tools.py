"""Terraform for the tests, on a machine that reaches no provider registry but does reach the Go module proxy.

- The binary: `terraform` on PATH, else OpenTofu built from its Go module (`tofu`); the configuration works
  with either.
- The providers: built with `go build` from their published Go modules into a filesystem mirror, cached under
  ~/.cache/double-boiler/ and keyed by version (a new pin means a new build, an old pin is never rebuilt).
  `terraform init` is pointed at the mirror by a CLI config file of the tests' own (TF_CLI_CONFIG_FILE);
  a provider that could not be built is left to the registry, where one is reachable (a plain init).
  Init runs on copies: the lock file it writes records the hashes of the local builds, which differ from the
  registry's, and never lands in the repository.

DOUBLE_BOILER_TERRAFORM=tofu runs the tests under OpenTofu where terraform is installed too.
`python -m tests.terraform_tools` builds everything (the Makefile's `terraform-tools` target) and says what
it could not have and why.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "double-boiler"
MIRROR = CACHE / "terraform-providers"
# Built as its release is (.goreleaser.yaml): without the version's "-dev" marker.
OPENTOFU_LDFLAGS = "-s -w -X github.com/opentofu/opentofu/version.dev=no"
OPENTOFU = ("github.com/opentofu/opentofu", "v1.10.10", "./cmd/tofu", OPENTOFU_LDFLAGS)


@dataclass(frozen=True)
class Provider:
    source: str  # registry address, e.g. heroku/heroku
    version: str  # the version the tests pin (versions.tf allows "~> 5.3" / "~> 3.9")
    module: str  # the Go module it is built from
    module_version: str

    @property
    def type(self):
        return self.source.split("/")[1]

    @property
    def binary(self):
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        return (
            MIRROR
            / "registry.terraform.io"
            / self.source
            / self.version
            / f"{sys.platform}_{arch}"
            / f"terraform-provider-{self.type}_v{self.version}"
        )


PROVIDERS = [
    Provider("heroku/heroku", "5.3.2", "github.com/heroku/terraform-provider-heroku/v5", "v5.3.2"),
    # Its go.mod says github.com/hashicorp/terraform-provider-random (no /v3), so Go knows the v3 tags as
    # +incompatible versions only when the proxy has them.
    Provider("hashicorp/random", "3.9.0", "github.com/hashicorp/terraform-provider-random", "v3.9.0+incompatible"),
]


def _go():
    return shutil.which("go") or next((p for p in ["/usr/local/go/bin/go"] if Path(p).exists()), None)


def _first_error(text):
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("go: downloading")]
    return " ".join(" ".join(lines[-3:]).split()) if lines else "no output"


def go_build(module, version, package, output, ldflags=""):
    """Builds `package` of the Go module `module@version` into `output`: the module is downloaded from the Go
    module proxy and built as the main module, so its own replace directives apply (which `go install
    module@version` refuses). Returns None, or why it could not be built."""
    go = _go()
    if go is None:
        return "no Go toolchain (go on PATH or /usr/local/go/bin/go)"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True, env=env, check=False
    )
    try:
        info = json.loads(download.stdout)
    except json.JSONDecodeError:
        return f"go mod download {module}@{version}: {_first_error(download.stderr)}"
    if "Error" in info or "Dir" not in info:
        return f"go mod download: {' '.join(info.get('Error', _first_error(download.stderr)).split())}"
    output.parent.mkdir(parents=True, exist_ok=True)
    # A writable copy at a fixed place, so that Go's build cache serves a rebuild (a new directory would
    # recompile every package of the module).
    source = CACHE / "go-src" / f"{module.replace('/', '_')}@{version}"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(info["Dir"], source)
    for path in [source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    partial = output.with_name(output.name + ".partial")
    build = subprocess.run(
        [go, "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(partial), package],
        cwd=source,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    shutil.rmtree(source, ignore_errors=True)
    if build.returncode != 0:
        return f"go build {module}@{version} {package}: {_first_error(build.stderr)}"
    partial.rename(output)
    return None


@dataclass
class Toolchain:
    binary: str | None  # terraform or tofu
    binary_reason: str  # where it came from, or why there is none
    built: list  # Providers in the mirror
    missing: dict  # Provider -> why it could not be built
    seconds: float

    @property
    def name(self):
        return Path(self.binary).name if self.binary else None

    def cli_config(self, directory):
        """A CLI config that installs the built providers from the mirror and the rest from their registry."""
        path = Path(directory) / "terraform-cli.tfrc"
        sources = ", ".join(f'"registry.terraform.io/{p.source}"' for p in self.built)
        if self.built:
            text = (
                "provider_installation {\n"
                f'  filesystem_mirror {{\n    path    = "{MIRROR}"\n    include = [{sources}]\n  }}\n'
                f"  direct {{\n    exclude = [{sources}]\n  }}\n}}\n"
            )
        else:
            text = "provider_installation {\n  direct {}\n}\n"
        path.write_text(text)
        return path

    def missing_reason(self):
        return "; ".join(f"{p.source} {p.version}: {why}" for p, why in self.missing.items())


def find_binary():
    """terraform on PATH, else tofu on PATH, else OpenTofu built from its Go module into the cache.
    DOUBLE_BOILER_TERRAFORM=tofu picks OpenTofu even where terraform is installed (on PATH or built)."""
    names = ["tofu"] if os.environ.get("DOUBLE_BOILER_TERRAFORM") == "tofu" else ["terraform", "tofu"]
    for name in names:
        found = shutil.which(name)
        if found:
            return found, f"{name} on PATH"
    module, version, package, ldflags = OPENTOFU
    tofu = CACHE / f"tofu-{version}" / "tofu"
    if tofu.exists():
        return str(tofu), f"OpenTofu {version}, built earlier into {tofu.parent}"
    error = go_build(module, version, package, tofu, ldflags)
    if error:
        return None, f"no terraform or tofu on PATH, and OpenTofu could not be built: {error}"
    return str(tofu), f"OpenTofu {version}, built from its Go module into {tofu.parent}"


def prepare():
    started = time.monotonic()
    binary, reason = find_binary()
    built, missing = [], {}
    for provider in PROVIDERS:
        if not provider.binary.exists():
            error = go_build(provider.module, provider.module_version, ".", provider.binary)
            if error:
                missing[provider] = error
                continue
        built.append(provider)
    return Toolchain(binary, reason, built, missing, time.monotonic() - started)


def main():
    tools = prepare()
    print(f"binary: {tools.binary or 'none'} ({tools.binary_reason})")
    for provider in tools.built:
        print(f"provider {provider.source} {provider.version}: {provider.binary}")
    for provider, why in tools.missing.items():
        print(f"provider {provider.source} {provider.version}: NOT BUILT: {why}")
    print(f"({tools.seconds:.1f} s)")


if __name__ == "__main__":
    main()
