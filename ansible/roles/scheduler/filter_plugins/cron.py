"""cron_to_oncalendar: a five-field cron expression as a systemd OnCalendar= value (UTC).

Scheduled jobs are listed once, in app.json's "cron" list (Dokku's extension of Heroku's manifest), with
cron schedules limited to what Heroku Scheduler can express. This filter turns such a schedule into a
systemd calendar event so the VPS runs the same jobs at the same times.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_DOW = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_ITEM = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?$")


def _field(value: str, name: str, low: int, high: int, width: int) -> str:
    """Translate one cron field (lists, ranges, steps) to systemd's syntax."""
    parts = []
    for item in value.split(","):
        match = _ITEM.match(item)
        if not match:
            raise AnsibleFilterError(f"cron_to_oncalendar: {name} field '{value}' is not supported")
        base, _, step = match.groups()
        numbers = [int(n) for n in re.findall(r"\d+", base)]
        if any(n < low or n > high for n in numbers):
            raise AnsibleFilterError(f"cron_to_oncalendar: {name} '{value}' is outside {low}-{high}")
        if base == "*":
            text = "*" if not step else f"{low:0{width}d}"
        elif "-" in base:
            first, last = numbers
            text = f"{first:0{width}d}..{last:0{width}d}"
        else:
            text = f"{numbers[0]:0{width}d}"
        if step:
            if "-" in base:
                raise AnsibleFilterError(f"cron_to_oncalendar: stepped range '{item}' is not supported")
            text += step
        parts.append(text)
    return ",".join(parts)


def cron_to_oncalendar(schedule: str) -> str:
    """Return the OnCalendar= value for a cron schedule ("30 3 * * *" -> "*-*-* 03:30:00 UTC")."""
    fields = str(schedule).split()
    if len(fields) != 5:
        raise AnsibleFilterError(f"cron_to_oncalendar: '{schedule}' is not a five-field cron expression")
    minute, hour, dom, month, dow = fields
    calendar = (
        f"*-{_field(month, 'month', 1, 12, 2)}-{_field(dom, 'day of month', 1, 31, 2)} "
        f"{_field(hour, 'hour', 0, 23, 2)}:{_field(minute, 'minute', 0, 59, 2)}:00 UTC"
    )
    if dow != "*":
        days = []
        for item in dow.split(","):
            if not re.fullmatch(r"\d(-\d)?", item):
                raise AnsibleFilterError(f"cron_to_oncalendar: day of week '{dow}' is not supported")
            first, _, last = item.partition("-")
            if int(first) > 7 or (last and int(last) > 7):
                raise AnsibleFilterError(f"cron_to_oncalendar: day of week '{dow}' is outside 0-7")
            days.append(f"{_DOW[int(first)]}..{_DOW[int(last)]}" if last else _DOW[int(first)])
        calendar = ",".join(days) + " " + calendar
    return calendar


class FilterModule:
    """Filters of the scheduler role."""

    def filters(self):
        return {"cron_to_oncalendar": cron_to_oncalendar}
