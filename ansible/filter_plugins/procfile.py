"""The one Procfile reader for Ansible: honcho's parser (the one app/procfile.py uses), as filters.

    {{ procfile_text | procfile }}                          process type -> command, in file order
    {{ procfile_text | procfile_command('release') }}       one command; an error naming the type otherwise

Every role that needs a process type's command reads it through these filters, so the VPS runs exactly what
Heroku and the local run read from the same file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    from honcho.environ import parse_procfile
except ImportError as missing:  # the controller's Python lacks requirements.txt
    parse_procfile = None
    _MISSING = missing


def procfile(text: str) -> dict:
    """Process type -> command, as honcho (and Heroku) read the file."""
    if parse_procfile is None:
        raise AnsibleFilterError(
            f"procfile: honcho is not installed on the controller ({_MISSING}); pip install -r requirements-dev.txt"
        )
    return dict(parse_procfile(str(text)).processes)


def procfile_command(text: str, process_type: str, where: str = "Procfile") -> str:
    """The command of one process type; the error names the type and the types the file has."""
    processes = procfile(text)
    if process_type not in processes:
        raise AnsibleFilterError(
            f"procfile: {where} has no process type '{process_type}' (it has {', '.join(processes) or 'none'})"
        )
    return processes[process_type]


class FilterModule:
    """The Procfile filters."""

    def filters(self):
        return {"procfile": procfile, "procfile_command": procfile_command}
