"""Container states, the actions on them, and the one table that relates them.

Every public operation and every exit reported by the monitor asks
``next_state`` before it touches the runtime, so a refusal happens before runc runs.
"""

from __future__ import annotations

import enum

from .errors import AlreadyPaused, ContainerStopped, InvalidState, NotPaused


class State(enum.StrEnum):
    CONFIGURED = "configured"
    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    PAUSED = "paused"
    EXITED = "exited"
    REMOVING = "removing"
    UNKNOWN = "unknown"


class Action(enum.StrEnum):
    INIT = "init"
    START = "start"
    STOP = "stop"
    KILL = "kill"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    RESTART = "restart"
    DIED = "died"
    CLEANUP = "cleanup"
    REMOVE = "remove"
    ATTACH = "attach"
    RESIZE = "resize"
    EXEC = "exec"
    MOUNT = "mount"
    CHECKPOINT = "checkpoint"
    RESTORE = "restore"
    UPDATE = "update"


S = State
A = Action

TRANSITIONS: dict[tuple[State, Action], State] = {
    # init: wire stdio and create the container in the runtime
    (S.CONFIGURED, A.INIT): S.CREATED,
    (S.STOPPED, A.INIT): S.CREATED,
    (S.EXITED, A.INIT): S.CREATED,
    # start inits first where needed
    (S.CONFIGURED, A.START): S.RUNNING,
    (S.CREATED, A.START): S.RUNNING,
    (S.STOPPED, A.START): S.RUNNING,
    (S.EXITED, A.START): S.RUNNING,
    # stop waits in `stopping` with the lock released; a second stop joins the wait
    (S.CREATED, A.STOP): S.STOPPING,
    (S.RUNNING, A.STOP): S.STOPPING,
    (S.STOPPING, A.STOP): S.STOPPING,
    # kill leaves the state to the monitor, which reports the death
    (S.RUNNING, A.KILL): S.RUNNING,
    (S.STOPPING, A.KILL): S.STOPPING,
    (S.RUNNING, A.PAUSE): S.PAUSED,
    (S.PAUSED, A.UNPAUSE): S.RUNNING,
    # restart = stop if needed, then start
    **{(s, A.RESTART): S.RUNNING for s in S if s is not S.REMOVING},
    # the monitor saw the init process exit
    (S.CREATED, A.DIED): S.STOPPED,
    (S.RUNNING, A.DIED): S.STOPPED,
    (S.STOPPING, A.DIED): S.STOPPED,
    (S.PAUSED, A.DIED): S.STOPPED,
    # cleanup deletes the runtime's copy; a created-only container goes back to configured
    (S.CONFIGURED, A.CLEANUP): S.CONFIGURED,
    (S.CREATED, A.CLEANUP): S.CONFIGURED,
    (S.STOPPED, A.CLEANUP): S.EXITED,
    (S.STOPPING, A.CLEANUP): S.EXITED,
    (S.EXITED, A.CLEANUP): S.EXITED,
    # remove: a live container must be stopped first (force does that)
    (S.CONFIGURED, A.REMOVE): S.REMOVING,
    (S.CREATED, A.REMOVE): S.REMOVING,
    (S.STOPPED, A.REMOVE): S.REMOVING,
    (S.EXITED, A.REMOVE): S.REMOVING,
    (S.UNKNOWN, A.REMOVE): S.REMOVING,
    (S.REMOVING, A.REMOVE): S.REMOVING,  # a removal that failed half-way may be retried
    (S.CREATED, A.ATTACH): S.CREATED,
    (S.RUNNING, A.ATTACH): S.RUNNING,
    (S.CREATED, A.RESIZE): S.CREATED,
    (S.RUNNING, A.RESIZE): S.RUNNING,
    (S.RUNNING, A.EXEC): S.RUNNING,
    **{(s, A.MOUNT): s for s in S if s is not S.REMOVING},
    # update: the runtime changes a live cgroup (podman: created, running, paused); where no
    # cgroup exists the new limits are only saved, for the next start. Refused while
    # stopping: the process is on its way out, and a runtime call would race its exit.
    **{(s, A.UPDATE): s for s in (S.CONFIGURED, S.CREATED, S.RUNNING, S.PAUSED, S.STOPPED,
                                  S.EXITED)},
    (S.RUNNING, A.CHECKPOINT): S.STOPPED,
    (S.STOPPED, A.RESTORE): S.RUNNING,
    (S.EXITED, A.RESTORE): S.RUNNING,
}

# Where the spec names a distinct error; every other refusal is InvalidState.
REFUSALS: dict[tuple[State, Action], type[InvalidState]] = {
    (S.STOPPED, A.STOP): ContainerStopped,
    (S.EXITED, A.STOP): ContainerStopped,
    (S.PAUSED, A.PAUSE): AlreadyPaused,
    **{(s, A.UNPAUSE): NotPaused for s in S if s is not S.PAUSED},
}

# States in which the container's init process may be alive.
LIVE_STATES = frozenset({S.CREATED, S.RUNNING, S.STOPPING, S.PAUSED})


def next_state(current: State, action: Action, who: str = "container") -> State:
    """The state ``action`` leads to from ``current``, or the error that refuses it."""
    try:
        return TRANSITIONS[current, action]
    except KeyError:
        error = REFUSALS.get((current, action), InvalidState)
        raise error(
            f"{who} is {current.value}; cannot {action.value} it", state=current.value
        ) from None


def allowed(current: State, action: Action) -> bool:
    return (current, action) in TRANSITIONS
