"""What the daemon tells the artist through `notify` (poster.notify): the same for `poster run`
(whose reporter adds its lines on top) and for the daemon inside `poster ui`. Light to import:
`poster --help` loads it with the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from poster import jobs

if TYPE_CHECKING:
    from poster.config import Config


class Notices:
    """What the daemon tells the artist through `notify` (the desktop, apprise services):
    artwork held at intake, a failed post or expired login, a post that needs checking, a copy
    waiting for approval. The same for `poster run` (the CLI's reporter adds its lines on top)
    and for the daemon inside `poster ui`. `cfg` is replaced by the Ticker after a reload."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def intake(self, results: list[Any]) -> None:
        from poster import notify

        for r in results:
            if r.outcome == "held":
                notify.event(self.cfg, "held", file=r.name, reason=r.reason)

    def __call__(self, event: Any) -> None:
        from poster import notify
        from poster.dispatch import AwaitingApproval, Held

        if isinstance(event, Held):
            return
        if isinstance(event, AwaitingApproval):
            notify.event(self.cfg, "approval", target=event.target, file=event.name)
            return
        fields = {"target": event.target, "file": event.name, "reason": event.reason}
        if event.state == jobs.State.FAILED:
            notify.event(self.cfg, notify.kind_of_failure(event.reason or ""), **fields)
        elif event.state == jobs.State.UNCERTAIN:
            notify.event(self.cfg, "uncertain", **fields)

    def progress(self, job: jobs.Job, stage: str) -> None:
        pass

    def done(self) -> None:
        pass

    def recovered(self, job: jobs.Job) -> None:
        from poster import notify

        notify.event(self.cfg, "uncertain", target=job.target, file=job.name, reason=job.reason)
