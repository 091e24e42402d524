"""Check Terraform configurations against the providers' real schemas, offline.

Terraform cannot run where the project's tests run (no binary, no registry), so this does the part of
`terraform validate` that needs only the provider schemas (terraform/provider_schemas.json, derived from
heroku/heroku v5.3.2 and hashicorp/random v3.9.0 by derive_provider_schemas.py):

- every .tf file parses (python-hcl2);
- every provider used is declared in required_providers with its real source;
- every resource and data source type exists; every argument and block inside it is real, and used as
  what it is (`name = value` for an argument, `name { ... }` for a block); required ones are present,
  computed-only ones are never set; block counts, conflicting arguments and literal values follow the schema;
- every `app_id` references an app's `id` (heroku_app.<name>.id), never a name or a literal;
- every reference (resource attribute, var., local., module.<name>.<output>) points at something declared;
- every output that carries a sensitive value is marked sensitive, as Terraform demands;
- every module call passes only variables the module declares, and all of its required ones.

    python terraform/schema_check.py DIR [DIR ...]     # exit status 1 and one line per problem
"""

import difflib
import functools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hcl2

SCHEMAS_PATH = Path(__file__).resolve().with_name("provider_schemas.json")

# Meta-arguments Terraform itself understands on resources and data sources, and what kind each is.
META_ATTRIBUTES = {"count", "for_each", "depends_on", "provider"}
META_BLOCKS = {"lifecycle", "provisioner", "connection"}
MODULE_META = {"source", "version", "providers", "count", "for_each", "depends_on"}

# A reference to a managed or data resource of these providers, e.g. heroku_app.this.id,
# heroku_addon.redis[0].config_var_values, data.heroku_team.main.id.
RESOURCE_REF = re.compile(
    r"(?<![\w.\-])(data\.)?((?:heroku|random)_[a-z0-9_]+)\.([A-Za-z_][\w-]*)((?:\[[^\]]*\])?)(?:\.([A-Za-z_]\w*))?"
)
VAR_REF = re.compile(r"(?<![\w.\-])var\.([A-Za-z_][\w-]*)")
LOCAL_REF = re.compile(r"(?<![\w.\-])local\.([A-Za-z_][\w-]*)")
MODULE_REF = re.compile(r"(?<![\w.\-])module\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?(?:\.([A-Za-z_][\w-]*))?")
APP_ID_REF = re.compile(r"^\$\{(data\.)?heroku_app\.([A-Za-z_][\w-]*)(\[[^\]]*\])?\.id\}$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def load_schemas(path=SCHEMAS_PATH):
    return json.loads(Path(path).read_text())["providers"]


# ---------------------------------------------------------------------------------------------------------
# Reading python-hcl2's output: labels and string literals keep their quotes, expressions are "${...}",
# blocks are lists of dicts marked __is_block__, comments come as __comments__ keys.
# ---------------------------------------------------------------------------------------------------------


def _label(raw):
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw


def _keys(body):
    return [key for key in body if not key.startswith("__")]


def _is_block(value):
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def _literal_string(value):
    """The text of a plain string literal, or None for anything else (expressions, templates, numbers)."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' and "${" not in value:
        return json.loads(value) if "\\" in value else value[1:-1]
    return None


def _is_null(value):
    return value is None or value == "${null}"


def _expressions(value):
    """Every expression string inside an attribute value (plain literals are skipped: they refer to nothing)."""
    if isinstance(value, str):
        if "${" in value:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if not key.startswith("__"):
                yield from _expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _expressions(item)


@dataclass
class Module:
    directory: Path
    files: dict = field(default_factory=dict)
    required_providers: dict = field(default_factory=dict)  # local name -> source
    providers: list = field(default_factory=list)  # (file, local name, body)
    resources: dict = field(default_factory=dict)  # (type, name) -> (file, body)
    data: dict = field(default_factory=dict)
    variables: dict = field(default_factory=dict)
    locals: dict = field(default_factory=dict)  # name -> (file, expression)
    outputs: dict = field(default_factory=dict)
    modules: dict = field(default_factory=dict)
    parse_errors: list = field(default_factory=list)


@functools.lru_cache(maxsize=256)
def _parse(path, _mtime_ns, _size):
    """python-hcl2's dict for one file; cached per file version (parsing is the slow part)."""
    with open(path) as handle:
        return hcl2.load(handle)


def load_module(directory):
    module = Module(Path(directory))
    for path in sorted(module.directory.glob("*.tf")):
        stat = path.stat()
        try:
            parsed = _parse(str(path), stat.st_mtime_ns, stat.st_size)
        except Exception as error:  # python-hcl2 raises lark errors of several kinds
            module.parse_errors.append(f"{path}: does not parse as HCL: {error}")
            continue
        name = path.name
        module.files[name] = parsed
        for block in parsed.get("terraform", []):
            for providers in block.get("required_providers", []):
                for local_name in _keys(providers):
                    spec = providers[local_name]
                    source = _literal_string(spec.get("source")) if isinstance(spec, dict) else None
                    module.required_providers[local_name] = (name, source, spec)
        for block in parsed.get("provider", []):
            for label in _keys(block):
                module.providers.append((name, _label(label), block[label]))
        for kind, target in (("resource", module.resources), ("data", module.data)):
            for block in parsed.get(kind, []):
                for type_label in _keys(block):
                    for name_label, body in block[type_label].items():
                        if not name_label.startswith("__"):
                            target[(_label(type_label), _label(name_label))] = (name, body)
        for kind, target in (("variable", module.variables), ("output", module.outputs), ("module", module.modules)):
            for block in parsed.get(kind, []):
                for label in _keys(block):
                    target[_label(label)] = (name, block[label])
        for block in parsed.get("locals", []):
            for key in _keys(block):
                module.locals[key] = (name, block[key])
    return module


# ---------------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------------


class Checker:
    def __init__(self, schemas=None):
        self.by_source = schemas if schemas is not None else load_schemas()  # "heroku/heroku" -> schema
        self.problems = []

    # -- helpers
    def problem(self, where, message):
        self.problems.append(f"{where}: {message}")

    def provider_of(self, module, type_name):
        """(local name, provider schema) of a resource type, per required_providers; schema None if unknown."""
        local_name = type_name.split("_", 1)[0]
        declared = module.required_providers.get(local_name)
        if declared is None:
            return local_name, None
        return local_name, self.by_source.get(declared[1])

    @staticmethod
    def _suggest(name, candidates):
        close = difflib.get_close_matches(name, list(candidates), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    # -- one block against its schema
    def check_body(self, body, schema, where, resource_types):
        keys = set(_keys(body))
        dynamic_labels = set()
        for dynamic in body.get("dynamic", []) if _is_block(body.get("dynamic")) else []:
            for raw_label in _keys(dynamic):
                label = _label(raw_label)
                dynamic_labels.add(label)
                if label not in schema["blocks"]:
                    kind = "an argument" if label in schema["attributes"] else "not a block of this type"
                    self.problem(
                        where, f"dynamic {label!r}: {label!r} is {kind}{self._suggest(label, schema['blocks'])}"
                    )
                    continue
                for content in dynamic[raw_label].get("content", []):
                    self.check_body(content, schema["blocks"][label], f"{where}.{label}", resource_types)
        for key in sorted(keys - {"dynamic"}):
            value = body[key]
            if key in schema["attributes"]:
                spec = schema["attributes"][key]
                if _is_block(value):
                    self.problem(where, f"{key!r} is an argument: write `{key} = ...`, not a block")
                elif spec.get("implicit") or spec.get("computed_only"):
                    self.problem(where, f"{key!r} is computed by the provider and cannot be set in configuration")
                else:
                    self.check_value(key, value, spec, where, resource_types)
            elif key in schema["blocks"]:
                spec = schema["blocks"][key]
                if not _is_block(value):
                    self.problem(where, f"{key!r} is a block: write `{key} {{ ... }}`, not `{key} = ...`")
                    continue
                if spec.get("max_items") is not None and len(value) > spec["max_items"]:
                    self.problem(
                        where, f"block {key!r} appears {len(value)} times, at most {spec['max_items']} allowed"
                    )
                for item in value:
                    self.check_body(item, spec, f"{where}.{key}", resource_types)
            else:
                self.problem(
                    where,
                    f"unknown argument or block {key!r}"
                    f"{self._suggest(key, list(schema['attributes']) + list(schema['blocks']))}",
                )
        for name, spec in sorted(schema["attributes"].items()):
            if spec.get("required") and name not in keys:
                self.problem(where, f"required argument {name!r} is missing")
        for name, spec in sorted(schema["blocks"].items()):
            needed = spec.get("required") or spec.get("min_items", 0) > 0
            if needed and name not in keys and name not in dynamic_labels:
                self.problem(where, f"required block {name!r} is missing")
            elif name in keys and _is_block(body[name]) and len(body[name]) < spec.get("min_items", 0):
                self.problem(where, f"block {name!r} needs at least {spec['min_items']}")
        for name, spec in sorted(schema["attributes"].items()):
            for other in spec.get("conflicts_with", []):
                other = other.rsplit(".", 1)[-1]
                if name < other and name in keys and other in keys:
                    both_literal = (
                        not _is_null(body[name])
                        and not _is_null(body[other])
                        and all("${" not in str(body[n]) for n in (name, other))
                    )
                    if both_literal:
                        self.problem(where, f"{name!r} and {other!r} conflict: set only one")

    def check_value(self, key, value, spec, where, resource_types):
        if key == "app_id":
            match = APP_ID_REF.match(value) if isinstance(value, str) else None
            if not match:
                self.problem(where, f"app_id must reference an app's UUID as heroku_app.<name>.id, not {value!r}")
            else:
                kind = "heroku_app" if not match.group(1) else "data.heroku_app"
                if (kind, match.group(2)) not in resource_types:
                    self.problem(where, f"app_id refers to {kind}.{match.group(2)}, which this module does not declare")
            return
        text = _literal_string(value)
        if text is not None:
            if spec.get("uuid") and not UUID.match(text):
                self.problem(where, f"{key!r} must be a UUID, not {text!r}")
            if spec.get("not_empty") and text == "":
                self.problem(where, f"{key!r} must not be empty")
            if spec.get("pattern") and not re.search(spec["pattern"], text):
                self.problem(where, f"{key!r} = {text!r} does not match {spec['pattern']!r}")
            if spec.get("allowed_values"):
                allowed = spec["allowed_values"]
                ok = text.lower() in {a.lower() for a in allowed} if spec.get("ignore_case") else text in allowed
                if not ok:
                    self.problem(where, f"{key!r} = {text!r} is not one of {allowed}")
            if spec.get("min_length") is not None and len(text) < spec["min_length"]:
                self.problem(where, f"{key!r} is shorter than {spec['min_length']} characters")
            if spec.get("max_length") is not None and len(text) > spec["max_length"]:
                self.problem(where, f"{key!r} is longer than {spec['max_length']} characters")
            if spec.get("type") in ("int", "int64", "bool", "float", "list", "set", "map"):
                self.problem(where, f"{key!r} takes a {spec['type']}, not the string {text!r}")
        elif isinstance(value, bool):
            if spec.get("type") not in ("bool",):
                self.problem(where, f"{key!r} takes a {spec.get('type')}, not a bool")
        elif isinstance(value, (int, float)):
            if spec.get("type") not in ("int", "int64", "float", "number"):
                self.problem(where, f"{key!r} takes a {spec.get('type')}, not a number")
            if spec.get("min") is not None and value < spec["min"]:
                self.problem(where, f"{key!r} = {value} is below the minimum {spec['min']}")
            if spec.get("max") is not None and value > spec["max"]:
                self.problem(where, f"{key!r} = {value} is above the maximum {spec['max']}")

    # -- whole modules
    def check_module(self, directory, _seen=None):
        module = load_module(directory)
        self.problems.extend(module.parse_errors)
        if not module.files:
            self.problem(directory, "no .tf files")
            return module
        resource_types = {(t, n) for t, n in module.resources} | {(f"data.{t}", n) for t, n in module.data}

        for local_name, (file, source, spec) in sorted(module.required_providers.items()):
            where = f"{module.directory / file}: required_providers.{local_name}"
            if source not in self.by_source:
                self.problem(where, f"source {source!r} is not a provider this project has a schema for")
            if not isinstance(spec, dict) or not _literal_string(spec.get("version")):
                self.problem(where, "no version constraint")

        for file, local_name, body in module.providers:
            where = f"{module.directory / file}: provider.{local_name}"
            declared = module.required_providers.get(local_name)
            if declared is None or declared[1] not in self.by_source:
                self.problem(where, f"provider {local_name!r} is not in required_providers")
                continue
            self.check_body(body, self.by_source[declared[1]]["provider"], where, resource_types)

        for kind, table, catalogue in (
            ("resource", module.resources, "resources"),
            ("data", module.data, "data_sources"),
        ):
            for (type_name, name), (file, body) in sorted(table.items()):
                address = f"{'data.' if kind == 'data' else ''}{type_name}.{name}"
                where = f"{module.directory / file}: {address}"
                local_name, provider = self.provider_of(module, type_name)
                if provider is None:
                    self.problem(
                        where,
                        f"provider {local_name!r} is not declared in required_providers with a known source "
                        f"(Terraform would look for hashicorp/{local_name})",
                    )
                    continue
                schema = provider[catalogue].get(type_name)
                if schema is None:
                    self.problem(
                        where,
                        f"{type_name!r} is not a {kind} type of the provider{self._suggest(type_name, provider[catalogue])}",
                    )
                    continue
                # Data sources take the same meta-arguments, but only lifecycle among the blocks.
                meta_blocks = META_BLOCKS if kind == "resource" else {"lifecycle"}
                plain = {k: v for k, v in body.items() if k not in META_ATTRIBUTES and k not in meta_blocks}
                for meta in sorted(set(_keys(body)) & meta_blocks):
                    if not _is_block(body[meta]):
                        self.problem(where, f"{meta!r} is a block")
                self.check_body(plain, schema, where, resource_types)

        self.check_references(module, resource_types)
        self.check_validation_cycles(module)
        self.check_sensitive_outputs(module)
        self.check_module_calls(module, _seen or set())
        return module

    def check_references(self, module, resource_types):
        def scan(where, value):
            for expression in _expressions(value):
                for match in RESOURCE_REF.finditer(expression):
                    data, type_name, name, _, attribute = match.groups()
                    key = (f"data.{type_name}" if data else type_name, name)
                    if key not in resource_types:
                        self.problem(where, f"refers to {key[0]}.{name}, which is not declared")
                        continue
                    if attribute:
                        _, provider = self.provider_of(module, type_name)
                        catalogue = "data_sources" if data else "resources"
                        schema = (provider or {}).get(catalogue, {}).get(type_name)
                        if schema and attribute not in schema["attributes"] and attribute not in schema["blocks"]:
                            self.problem(
                                where,
                                f"{key[0]}.{name} has no attribute {attribute!r}{self._suggest(attribute, schema['attributes'])}",
                            )
                for match in VAR_REF.finditer(expression):
                    if match.group(1) not in module.variables:
                        self.problem(where, f"refers to var.{match.group(1)}, which is not declared")
                for match in LOCAL_REF.finditer(expression):
                    if match.group(1) not in module.locals:
                        self.problem(where, f"refers to local.{match.group(1)}, which is not declared")
                for match in MODULE_REF.finditer(expression):
                    if match.group(1) not in module.modules:
                        self.problem(where, f"refers to module.{match.group(1)}, which is not declared")
                    elif match.group(2):
                        child = self._child_module(module, match.group(1))
                        if child is not None and match.group(2) not in child.outputs:
                            self.problem(where, f"module.{match.group(1)} has no output {match.group(2)!r}")

        for (type_name, name), (file, body) in module.resources.items():
            scan(f"{module.directory / file}: {type_name}.{name}", body)
        for (type_name, name), (file, body) in module.data.items():
            scan(f"{module.directory / file}: data.{type_name}.{name}", body)
        for name, (file, expression) in module.locals.items():
            scan(f"{module.directory / file}: local.{name}", expression)
        for name, (file, body) in module.outputs.items():
            scan(f"{module.directory / file}: output.{name}", body)
        for name, (file, body) in module.modules.items():
            scan(f"{module.directory / file}: module.{name}", body)
        for name, (file, body) in module.variables.items():
            scan(f"{module.directory / file}: variable.{name}", body.get("validation", []))
        for file, local_name, body in module.providers:
            scan(f"{module.directory / file}: provider.{local_name}", body)

    def check_validation_cycles(self, module):
        """Validations may refer to other variables (Terraform 1.9), but not in a circle: Terraform reports
        "Cycle: var.a (validation), var.b (validation)" and refuses the whole configuration."""
        edges = {}
        for name, (_, body) in module.variables.items():
            refs = set()
            for expression in _expressions(body.get("validation", [])):
                refs.update(m.group(1) for m in VAR_REF.finditer(expression))
            edges[name] = sorted((refs - {name}) & set(module.variables))
        reported = set()

        def visit(name, path):
            for target in edges.get(name, []):
                if target in path:
                    cycle = path[path.index(target) :]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        file = module.variables[cycle[0]][0]
                        self.problem(
                            f"{module.directory / file}: variable.{cycle[0]}",
                            "validations refer to each other in a cycle: "
                            + " -> ".join(f"var.{n}" for n in [*cycle, target])
                            + " (keep every cross-variable check on one side)",
                        )
                else:
                    visit(target, [*path, target])

        for name in sorted(edges):
            visit(name, [name])

    def _child_module(self, module, name):
        _, body = module.modules[name]
        source = _literal_string(body.get("source"))
        if source is None or not source.startswith((".", "/")):
            return None
        path = (module.directory / source).resolve()
        return load_module(path) if path.is_dir() else None

    def sensitive_names(self, module):
        """The locals, variables and module outputs whose values are sensitive."""
        variables = {name for name, (_, body) in module.variables.items() if body.get("sensitive") is True}
        sensitive_locals = set()

        def carries_secret(value):
            for expression in _expressions(value):
                if any(m.group(1) in variables for m in VAR_REF.finditer(expression)):
                    return True
                if any(m.group(1) in sensitive_locals for m in LOCAL_REF.finditer(expression)):
                    return True
                for match in RESOURCE_REF.finditer(expression):
                    data, type_name, _, _, attribute = match.groups()
                    _, provider = self.provider_of(module, type_name)
                    schema = (provider or {}).get("data_sources" if data else "resources", {}).get(type_name)
                    if not schema:
                        continue
                    if attribute:
                        if schema["attributes"].get(attribute, {}).get("sensitive"):
                            return True
                    elif any(spec.get("sensitive") for spec in schema["attributes"].values()):
                        return True
                for match in MODULE_REF.finditer(expression):
                    if match.group(1) in module.modules and match.group(2):
                        child = self._child_module(module, match.group(1))
                        if child and child.outputs.get(match.group(2), (None, {}))[1].get("sensitive") is True:
                            return True
            return False

        changed = True
        while changed:  # locals may refer to locals: propagate until nothing changes
            changed = False
            for name, (_, expression) in module.locals.items():
                if name not in sensitive_locals and carries_secret(expression):
                    sensitive_locals.add(name)
                    changed = True
        return carries_secret

    def check_sensitive_outputs(self, module):
        carries_secret = self.sensitive_names(module)
        for name, (file, body) in sorted(module.outputs.items()):
            if carries_secret(body.get("value")) and body.get("sensitive") is not True:
                self.problem(
                    f"{module.directory / file}: output.{name}",
                    "its value carries a sensitive value: mark the output `sensitive = true`",
                )

    def check_module_calls(self, module, seen):
        for name, (file, body) in sorted(module.modules.items()):
            where = f"{module.directory / file}: module.{name}"
            source = _literal_string(body.get("source"))
            if source is None:
                self.problem(where, "source must be a string literal")
                continue
            if not source.startswith((".", "/")):
                continue  # a registry or git module: nothing to read offline
            path = (module.directory / source).resolve()
            if not path.is_dir():
                self.problem(where, f"source {source!r} is not a directory")
                continue
            child = load_module(path)
            for key in sorted(set(_keys(body)) - MODULE_META):
                if key not in child.variables:
                    self.problem(
                        where, f"module {source!r} has no variable {key!r}{self._suggest(key, child.variables)}"
                    )
            for variable, (_, spec) in sorted(child.variables.items()):
                if "default" not in spec and variable not in body:
                    self.problem(where, f"required variable {variable!r} of module {source!r} is not set")
            if path not in seen:
                seen.add(path)
                self.check_module(path, seen)


def check(directories, schemas=None):
    checker = Checker(schemas)
    for directory in directories:
        checker.check_module(Path(directory))
    return sorted(set(checker.problems))


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    problems = check(argv[1:])
    for line in problems:
        print(line)
    print(f"schema check: {len(problems)} problem(s) in {', '.join(argv[1:])}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
