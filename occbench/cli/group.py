"""A click group whose commands are imported only when they run (or their own ``--help`` is asked for).

Commands come from three places: those defined on the group itself; built-in ones named by ``"module:attribute"``
with their one-line help (so that ``occbench --help`` lists them without importing anything); and the
``occbench.commands`` entry points, through which packages (the reference baselines among them) add commands::

    [project.entry-points."occbench.commands"]
    train = "occbench_baselines.occfiner.command:train"

An entry-point command's module is imported to list it in ``--help``: keep its module-level imports light (click),
and import heavy dependencies inside the command function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

import click

COMMANDS_GROUP = "occbench.commands"


def _load(target: str) -> click.Command:
    module, _, attr = target.partition(":")
    cmd = getattr(importlib.import_module(module), attr)
    if not isinstance(cmd, click.Command):
        raise TypeError(f"{target} is not a click command")
    return cmd


def os_error_message(e: OSError) -> str:
    """One line for an operating-system error: the file(s), what went wrong, and for a full disk under the
    temporary folder that it is the temporary folder ($TMPDIR)."""
    import errno
    import os
    import tempfile

    what = e.strerror or str(e)
    files = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    line = f"{files}: {what}" if files else what
    if e.errno == errno.ENOSPC:
        tmp = tempfile.gettempdir()
        if e.filename is not None and str(e.filename).startswith(tmp.rstrip("/") + "/") and _same_disk(e.filename, tmp):
            line += f" (the temporary folder {tmp} is full: set $TMPDIR to a folder with more space)"
        elif e.filename is None:  # e.g. the world map's spill files: say which folders it can be
            line += (
                f" (the output folder or the temporary folder {tmp} is full: free space, write elsewhere, "
                "or set $TMPDIR)"
            )
        else:
            line += " (free some space, or write elsewhere)"
    elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        line += " (the folder is not writable: choose another output, or set $OCCBENCH_DATA for the data cache)"
    elif e.errno == errno.ENOTDIR or (
        e.errno == errno.EEXIST and e.filename is not None and not os.path.isdir(e.filename)  # mkdir on a file
    ):
        line += " (a file stands where a folder is expected)"
    return line


def _same_disk(path: str | bytes, folder: str) -> bool:
    """Whether ``path`` (or its nearest existing folder) lies on the file system of ``folder``: a full disk mounted
    below the temporary folder is not the temporary folder."""
    import os

    p = os.path.abspath(os.fsdecode(path))
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    try:
        return os.stat(p).st_dev == os.stat(folder).st_dev
    except OSError:
        return True


class LazyGroup(click.Group):
    """``lazy``: command name -> (``"module:attribute"``, one-line help)."""

    def __init__(
        self,
        *args,
        lazy: dict[str, tuple[str, str]] | None = None,
        warnings: Callable[[], Iterable[str]] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self.warnings = warnings  # lines for stderr before a command runs or the help is shown (once)
        self._warned = False

    def warn(self) -> None:
        if self.warnings is not None and not self._warned:
            self._warned = True
            for line in self.warnings():
                click.echo(line, err=True)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.warn()
        super().format_help(ctx, formatter)

    @staticmethod
    def entry_points() -> dict[str, str]:
        from importlib.metadata import entry_points

        return {ep.name: ep.value for ep in entry_points(group=COMMANDS_GROUP)}

    def invoke(self, ctx: click.Context):
        """Run the command; Ctrl-C and SIGTERM stop it with one line and exit 130 / 143
        (:mod:`occbench.runtime.interrupts`)."""
        from occbench.runtime.interrupts import exit_code, interrupted_line, stop_on_signals
        from occbench.runtime.progress import end_progress_lines

        self.warn()
        try:
            try:
                with stop_on_signals():
                    return super().invoke(ctx)
            except BaseException:  # every message about it (here, click's, a traceback) starts on a line of its own
                end_progress_lines()
                raise
        except OSError as e:  # no space, read-only, not a folder...: one line naming the file, exit 1
            click.echo(f"error: {os_error_message(e)}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt as e:
            click.echo(interrupted_line(e, ctx.invoked_subcommand), err=True)
            ctx.exit(exit_code(e))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy) | set(self.entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = self.lazy[cmd_name][0] if cmd_name in self.lazy else self.entry_points().get(cmd_name)
        if target is None:
            return None
        cmd = _load(target)
        self.commands[cmd_name] = cmd
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.lazy and name not in self.commands:
                rows.append((name, click.Command(name, help=self.lazy[name][1]).get_short_help_str(limit)))
                continue
            try:
                cmd = self.get_command(ctx, name)
            except Exception as e:  # noqa: BLE001 - a broken third-party command must not hide the others
                rows.append((name, f"(cannot load: {e})"))
                continue
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
