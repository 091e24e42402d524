"""heroku_schedule_to_oncalendar: a scheduled job's schedule as a systemd OnCalendar= value (UTC).

The scheduled jobs are app.json's "cron" list, with the schedules Heroku Scheduler can run and nothing
else, so the VPS and Heroku run the same jobs at the same times. The grammar has three forms (Heroku
Scheduler's three frequencies); tests/fixtures/schedules.json is its shared fixture:

    */10 * * * *   every 10 minutes           ->  *-*-* *:00/10:00 UTC
    M * * * *      every hour at :M            ->  *-*-* *:MM:00 UTC     (M = 0, 10, ... 50)
    M H * * *      every day at H:M UTC        ->  *-*-* HH:MM:00 UTC    (M = 0 or 30, H = 0 ... 23)

Any other schedule is refused with a message that names it.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_NUMBER = re.compile(r"^[0-9]{1,2}$")


def _number(field: str, allowed) -> int | None:
    return int(field) if _NUMBER.match(field) and int(field) in allowed else None


def heroku_schedule_to_oncalendar(schedule) -> str:
    """Return the OnCalendar= value ("30 3 * * *" -> "*-*-* 03:30:00 UTC"), or refuse the schedule."""
    fields = str(schedule).split()
    if len(fields) == 5 and fields[2:] == ["*", "*", "*"]:
        minute, hour = fields[:2]
        if minute == "*/10" and hour == "*":
            return "*-*-* *:00/10:00 UTC"
        if hour == "*" and (at := _number(minute, range(0, 60, 10))) is not None:
            return f"*-*-* *:{at:02d}:00 UTC"
        at, hours = _number(minute, (0, 30)), _number(hour, range(24))
        if at is not None and hours is not None:
            return f"*-*-* {hours:02d}:{at:02d}:00 UTC"
    raise AnsibleFilterError(
        f"schedule '{schedule}' is not one Heroku Scheduler can run: use '*/10 * * * *' (every 10 minutes), "
        "'M * * * *' with M in 0, 10, ... 50 (hourly) or 'M H * * *' with M 0 or 30 and H 0-23 (daily, UTC)"
    )


class FilterModule:
    """The schedule grammar's filter."""

    def filters(self):
        return {"heroku_schedule_to_oncalendar": heroku_schedule_to_oncalendar}
