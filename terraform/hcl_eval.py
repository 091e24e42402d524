"""Evaluate this configuration's own expressions offline: variable validations, locals, resource arguments.

Terraform cannot run where the tests run, yet the logic that matters most lives in expressions: which
variable combinations are refused and with what message, which config vars are set, how many dynos each
process type gets, how app.json's cron list becomes Scheduler entries. This module parses the .tf files with
python-hcl2's grammar and evaluates the part of Terraform's expression language those expressions use, with
Terraform's semantics (null, conditionals, for expressions, can/try, regex, format, ...). Anything outside
that part raises Unsupported, so a test can never pass by evaluating something it does not understand.

    config = Configuration.load("terraform")
    config.validation_errors({"app_name": "my-app", "dyno_size": "standard-1x", "web_quantity": 2})
    # -> ["web_quantity must be 1 while layout = \"packed\": ..."]
    config.local("scheduler_jobs", variables={"app_name": "my-app"})
"""

import json
import math
import re
from pathlib import Path

import hcl2
from lark import Token, Tree


class EvalError(Exception):
    """What Terraform would report as an error while evaluating (caught by can() and try())."""


class Unsupported(Exception):
    """An expression this evaluator does not implement: never swallowed by can() or try()."""


# ---------------------------------------------------------------------------------------------------------
# Reading the configuration
# ---------------------------------------------------------------------------------------------------------


def _children(tree):
    """Sub-trees that carry meaning (tokens and new lines/comments dropped)."""
    return [c for c in tree.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def _name(tree):
    """The text of an identifier, keyword or label."""
    if isinstance(tree, Token):
        return str(tree)
    if tree.data == "string":
        return "".join(str(part.children[0]) for part in tree.children if isinstance(part, Tree))
    return str(tree.children[0])


class Block:
    def __init__(self, kind, labels, attributes, blocks):
        self.kind, self.labels, self.attributes, self.blocks = kind, labels, attributes, blocks

    def blocks_of(self, kind):
        return [b for b in self.blocks if b.kind == kind]


def _read_body(body):
    attributes, blocks = {}, []
    for item in _children(body):
        if item.data == "attribute":
            parts = _children(item)
            attributes[_name(parts[0])] = parts[-1]
        elif item.data == "block":
            parts = _children(item)
            inner = parts[-1]
            kind = _name(parts[0])
            labels = [_name(p) for p in parts[1:-1]]
            sub_attributes, sub_blocks = _read_body(inner)
            blocks.append(Block(kind, labels, sub_attributes, sub_blocks))
    return attributes, blocks


class Configuration:
    def __init__(self, directory, blocks):
        self.directory = Path(directory).resolve()
        self.blocks = blocks
        self.variables = {b.labels[0]: b for b in blocks if b.kind == "variable"}
        self.locals = {}
        for block in blocks:
            if block.kind == "locals":
                self.locals.update(block.attributes)
        self.resources = {(b.labels[0], b.labels[1]): b for b in blocks if b.kind == "resource"}
        self.outputs = {b.labels[0]: b for b in blocks if b.kind == "output"}

    @classmethod
    def load(cls, directory):
        blocks = []
        for path in sorted(Path(directory).glob("*.tf")):
            tree = hcl2.parses_to_tree(path.read_text())
            _, top = _read_body(_children(tree)[0])
            blocks.extend(top)
        return cls(directory, blocks)

    # -- values
    def variable_values(self, given):
        values = {}
        for name, block in self.variables.items():
            if name in given:
                values[name] = given[name]
            elif "default" in block.attributes:
                values[name] = Evaluator({}).evaluate(block.attributes["default"])
            else:
                raise EvalError(f"variable {name!r} has no default and was not given")
            if values[name] is None and self._constant(block, "nullable") is False:
                raise EvalError(f"variable {name!r} is not nullable")
        unknown = set(given) - set(self.variables)
        if unknown:
            raise EvalError(f"no such variables: {sorted(unknown)}")
        return values

    def _constant(self, block, attribute):
        return Evaluator({}).evaluate(block.attributes[attribute]) if attribute in block.attributes else None

    def scope(self, variables, resources=None, locals_=None):
        """An evaluator for this module: variables (defaults filled in), lazily evaluated locals (locals_ pins
        some of them to given values), and stand-in values for the resources the expressions read."""
        values = self.variable_values(variables)
        evaluator = Evaluator(
            {
                "var": values,
                "path": {"module": str(self.directory), "root": str(self.directory), "cwd": str(self.directory)},
            },
            base_dir=self.directory,
        )
        evaluator.lazy_locals(self.locals)
        for name, value in (locals_ or {}).items():
            if name not in self.locals:
                raise EvalError(f"no local {name!r} to pin")
            dict.__setitem__(evaluator.scope["local"], name, value)
        for type_name, instances in (resources or {}).items():
            evaluator.scope[type_name] = instances
        return evaluator

    def validation_errors(self, variables):
        """The error messages Terraform would print for these variable values (all validations, 1.9 rules)."""
        return [message for _, _, message in self.failed_validations(variables)]

    def failed_validations(self, variables):
        evaluator = self.scope(variables)
        failed = []
        for name, block in self.variables.items():
            for index, validation in enumerate(block.blocks_of("validation")):
                if evaluator.evaluate(validation.attributes["condition"]) is not True:
                    failed.append((name, index, evaluator.evaluate(validation.attributes["error_message"])))
        return failed

    def local(self, name, variables, resources=None, locals_=None):
        return self.scope(variables, resources, locals_).scope["local"][name]

    def argument(self, type_name, name, argument, variables, resources=None, locals_=None):
        block = self.resources[(type_name, name)]
        return self.scope(variables, resources, locals_).evaluate(block.attributes[argument])

    def output(self, name, variables, resources=None, locals_=None):
        return self.scope(variables, resources, locals_).evaluate(self.outputs[name].attributes["value"])


class _LazyLocals(dict):
    """local.* evaluated on first use, as Terraform evaluates locals in dependency order."""

    def __init__(self, evaluator, expressions):
        super().__init__()
        self._evaluator, self._expressions = evaluator, expressions

    def __getitem__(self, key):
        if not dict.__contains__(self, key):
            if key not in self._expressions:
                raise EvalError(f"no local {key!r}")
            dict.__setitem__(self, key, self._evaluator.evaluate(self._expressions[key]))
        return dict.__getitem__(self, key)

    def __contains__(self, key):
        return key in self._expressions


# ---------------------------------------------------------------------------------------------------------
# Evaluating expressions
# ---------------------------------------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(text):
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text)


def _to_string(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else repr(value)
    if isinstance(value, str):
        return value
    raise EvalError(f"cannot convert {value!r} to a string")


def _to_number(value):
    if isinstance(value, bool):
        raise EvalError("cannot convert a bool to a number")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value.strip()):
        number = float(value)
        return int(number) if number.is_integer() else number
    raise EvalError(f"cannot convert {value!r} to a number")


def _format(spec, *args):
    """Terraform's format(), for the verbs this configuration uses (%s, %d, %02d ...)."""
    values = list(args)

    def verb(match):
        flags, kind = match.group(1), match.group(2)
        if kind == "%":
            return "%"
        if not values:
            raise EvalError("format: too few arguments")
        value = values.pop(0)
        if kind == "d":
            number = _to_number(value)
            if not float(number).is_integer():
                raise EvalError(f"format: %d needs a whole number, not {value!r}")
            return ("%" + flags + "d") % int(number)
        if kind == "s":
            return ("%" + flags + "s") % _to_string(value)
        raise Unsupported(f"format verb %{kind}")

    return re.sub(r"%([-0-9]*)([a-z%])", verb, spec)


def _regex(pattern, text):
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise EvalError("regex: pattern and string must be strings")
    match = re.search(pattern, text)
    if match is None:
        raise EvalError(f"regex: {pattern!r} does not match {text!r}")
    if match.groupdict():
        return match.groupdict()
    if match.groups():
        return list(match.groups())
    return match.group(0)


def _coalesce(*values):
    for value in values:
        if value is not None and value != "":
            return value
    raise EvalError("coalesce: no non-null, non-empty argument")


def _merge(*maps):
    out = {}
    for item in maps:
        if item is None:
            continue
        if not isinstance(item, dict):
            raise EvalError("merge: arguments must be maps or objects")
        out.update(item)
    return out


def _length(value):
    if value is None:
        raise EvalError("length: argument must not be null")
    return len(value)


def _distinct(values):
    out = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


FUNCTIONS = {
    "alltrue": lambda values: all(v is True for v in values),
    "anytrue": lambda values: any(v is True for v in values),
    "coalesce": _coalesce,
    "concat": lambda *lists: [item for values in lists for item in values],
    "contains": lambda values, value: value in values,
    "distinct": _distinct,
    "floor": lambda n: math.floor(_to_number(n)),
    "format": _format,
    "join": lambda separator, values: separator.join(_to_string(v) for v in values),
    "jsondecode": lambda text: json.loads(text),
    "keys": lambda value: sorted(value),
    "length": _length,
    "lower": lambda text: text.lower(),
    "merge": _merge,
    "regex": _regex,
    "setintersection": lambda first, *rest: sorted(set(first).intersection(*map(set, rest))),
    "split": lambda separator, text: text.split(separator),
    "tonumber": lambda value: None if value is None else _to_number(value),
    "toset": lambda values: sorted(set(values)),
    "tostring": lambda value: None if value is None else _to_string(value),
    "trimprefix": lambda text, prefix: text[len(prefix) :] if text.startswith(prefix) else text,
    "trimspace": lambda text: text.strip(),
    "trimsuffix": lambda text, suffix: text[: -len(suffix)] if suffix and text.endswith(suffix) else text,
}


# The functions used here that accept null arguments (coalesce skips them, the conversions pass them on).
NULL_ARGUMENTS_ALLOWED = {"coalesce", "tonumber", "tostring"}


class Evaluator:
    def __init__(self, scope, base_dir=None):
        self.scope = dict(scope)
        self.base_dir = Path(base_dir) if base_dir else Path.cwd()

    def lazy_locals(self, expressions):
        self.scope["local"] = _LazyLocals(self, expressions)

    def with_names(self, names):
        child = Evaluator({**self.scope, **names}, self.base_dir)
        return child

    def evaluate(self, tree):
        method = getattr(self, "_" + tree.data, None)
        if method is None:
            raise Unsupported(f"expression kind {tree.data!r}")
        return method(tree)

    # -- terms
    def _expr_term(self, tree):
        return self.evaluate(_children(tree)[0])

    def _literal_value(self, tree):
        return {"true": True, "false": False, "null": None}[str(tree.children[0])]

    def _int_lit(self, tree):
        return int(str(tree.children[0]))

    def _float_lit(self, tree):
        return float(str(tree.children[0]))

    def _string(self, tree):
        parts = []
        for part in tree.children:
            if not isinstance(part, Tree):
                continue
            inner = part.children[0]
            if isinstance(inner, Token):
                if inner.type == "STRING_CHARS":
                    parts.append(_unescape(str(inner)))
                elif inner.type == "ESCAPED_INTERPOLATION":
                    parts.append(str(inner)[1:])
                else:
                    raise Unsupported(f"string part {inner.type}")
            elif inner.data == "interpolation":
                value = self.evaluate(_children(inner)[0])
                if value is None:
                    raise EvalError("interpolation of a null value")
                parts.append(_to_string(value))
            else:
                raise Unsupported(f"template directive {inner.data}")
        return "".join(parts)

    def _tuple(self, tree):
        return [self.evaluate(c) for c in _children(tree)]

    def _object(self, tree):
        out = {}
        for element in _children(tree):
            key_tree, value_tree = _children(element)
            key_expr = _children(key_tree)[0] if _children(key_tree) else key_tree
            if key_expr.data == "expr_term" and _children(key_expr)[0].data == "identifier":
                key = _name(_children(key_expr)[0])
            elif key_expr.data in ("identifier", "keyword"):
                key = _name(key_expr)
            else:
                key = _to_string(self.evaluate(key_expr))
            out[key] = self.evaluate(value_tree)
        return out

    def _identifier(self, tree):
        name = _name(tree)
        if name not in self.scope:
            raise Unsupported(f"reference to {name!r}, which this evaluation has no value for")
        return self.scope[name]

    def _get_attr_expr_term(self, tree):
        base, attribute = _children(tree)
        value = self.evaluate(base)
        key = _name(_children(attribute)[0])
        if isinstance(value, dict):
            if key not in value:
                raise EvalError(f"no attribute {key!r}")
            return value[key]
        if value is None:
            raise EvalError(f"attribute {key!r} of null")
        raise EvalError(f"attribute {key!r} of a {type(value).__name__}")

    def _index_expr_term(self, tree):
        base, index = _children(tree)
        value = self.evaluate(base)
        if index.data == "short_index":
            key = int(str(index.children[-1]))
        else:
            key = self.evaluate(_children(index)[0])
        try:
            return value[key]
        except (KeyError, IndexError, TypeError):
            raise EvalError(f"invalid index {key!r}") from None

    def _function_call(self, tree):
        parts = _children(tree)
        name = _name(parts[0])
        arguments = _children(parts[1]) if len(parts) > 1 else []
        if name == "can":
            try:
                self.evaluate(arguments[0])
                return True
            except EvalError:
                return False
        if name == "try":
            for argument in arguments:
                try:
                    return self.evaluate(argument)
                except EvalError:
                    continue
            raise EvalError("try: no argument could be evaluated")
        if name == "file":
            path = Path(self.evaluate(arguments[0]))
            path = path if path.is_absolute() else self.base_dir / path
            try:
                return path.read_text()
            except OSError as error:
                raise EvalError(f"file: {error}") from None
        if name not in FUNCTIONS:
            raise Unsupported(f"function {name}()")
        values = [self.evaluate(a) for a in arguments]
        if name not in NULL_ARGUMENTS_ALLOWED and any(v is None for v in values):
            # Terraform's functions refuse null arguments unless they say otherwise.
            raise EvalError(f"{name}(): argument must not be null")
        try:
            return FUNCTIONS[name](*values)
        except (EvalError, Unsupported):
            raise
        except Exception as error:  # a Python error here is a Terraform call error
            raise EvalError(f"{name}(): {error}") from None

    # -- operators
    def _unary_op(self, tree):
        operator = str(tree.children[0])
        value = self.evaluate(_children(tree)[0])
        if operator == "!":
            if not isinstance(value, bool):
                raise EvalError("! needs a bool")
            return not value
        return -_to_number(value)

    def _binary_op(self, tree):
        left_tree, term = _children(tree)[:2]
        operator = str(_children(term)[0].children[0])
        right_tree = _children(term)[1]
        left = self.evaluate(left_tree)
        if operator in ("||", "&&"):
            # Terraform evaluates both sides (no short circuit), and both must be known bools.
            right = self.evaluate(right_tree)
            if not isinstance(left, bool) or not isinstance(right, bool):
                raise EvalError(f"{operator} needs bools")
            return (left or right) if operator == "||" else (left and right)
        right = self.evaluate(right_tree)
        if operator == "==":
            return _equal(left, right)
        if operator == "!=":
            return not _equal(left, right)
        if left is None or right is None:
            raise EvalError(f"{operator} with a null operand")
        left, right = _to_number(left), _to_number(right)
        return {
            "<": lambda: left < right,
            ">": lambda: left > right,
            "<=": lambda: left <= right,
            ">=": lambda: left >= right,
            "+": lambda: left + right,
            "-": lambda: left - right,
            "*": lambda: left * right,
            "/": lambda: left / right,
            "%": lambda: left % right,
        }[operator]()

    def _conditional(self, tree):
        condition, if_true, if_false = _children(tree)
        value = self.evaluate(condition)
        if not isinstance(value, bool):
            raise EvalError("the condition of ? : must be a bool")
        return self.evaluate(if_true if value else if_false)

    # -- for expressions
    def _for(self, tree):
        intro = next(c for c in _children(tree) if c.data == "for_intro")
        names = [_name(c) for c in _children(intro) if c.data == "identifier"]
        collection = self.evaluate([c for c in _children(intro) if c.data != "identifier"][0])
        condition = next((c for c in _children(tree) if c.data == "for_cond"), None)
        if isinstance(collection, dict):
            pairs = sorted(collection.items())
        elif isinstance(collection, list):
            pairs = list(enumerate(collection))
        else:
            raise EvalError("for: can only iterate over lists, sets, maps and objects")
        for key, value in pairs:
            bound = {names[0]: value} if len(names) == 1 else {names[0]: key, names[1]: value}
            child = self.with_names(bound)
            if condition is not None:
                keep = child.evaluate(_children(condition)[0])
                if not isinstance(keep, bool):
                    raise EvalError("for: the if clause must be a bool")
                if not keep:
                    continue
            yield child

    def _for_tuple_expr(self, tree):
        body = [c for c in _children(tree) if c.data not in ("for_intro", "for_cond")][0]
        return [child.evaluate(body) for child in self._for(tree)]

    def _for_object_expr(self, tree):
        key_tree, value_tree = [c for c in _children(tree) if c.data not in ("for_intro", "for_cond")][:2]
        return {_to_string(child.evaluate(key_tree)): child.evaluate(value_tree) for child in self._for(tree)}


def _equal(left, right):
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    return type(left) is type(right) and left == right
