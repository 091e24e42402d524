"""The one Procfile reader for Python: honcho's own parser, used by the launcher, the tests, the benchmark and
(through the command line) the Makefile. No other Python file parses a Procfile.

    python -m app.procfile Procfile web      prints the command of the `web` process type
    python -m app.procfile LocalProcfile     prints the process types, one a line, in file order
"""

import argparse
import sys
from pathlib import Path

from honcho.environ import parse_procfile

REPO = Path(__file__).resolve().parent.parent
PROCFILE = REPO / "Procfile"
LOCAL_PROCFILE = REPO / "LocalProcfile"


def read_procfile(path=PROCFILE):
    """Process type -> command, in file order, as honcho (and Heroku) read the file."""
    return dict(parse_procfile(Path(path).read_text()).processes)


def process_command(process_type, path=PROCFILE):
    """The command of one process type; a clear error naming the file when the type is not there."""
    processes = read_procfile(path)
    if process_type not in processes:
        raise KeyError(f"{Path(path).name} has no process type {process_type!r} (it has {', '.join(processes)})")
    return processes[process_type]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m app.procfile", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a Procfile")
    parser.add_argument("process_type", nargs="?", help="print this type's command (default: list the types)")
    args = parser.parse_args(argv)
    try:
        print(
            process_command(args.process_type, args.path) if args.process_type else "\n".join(read_procfile(args.path))
        )
    except (KeyError, OSError) as problem:
        sys.exit(f"{parser.prog}: {problem.args[0] if isinstance(problem, KeyError) else problem}")


if __name__ == "__main__":
    main()
