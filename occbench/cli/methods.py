"""``occbench methods``: list the registered offboard methods and their options."""

from __future__ import annotations

import click

from occbench.errors import UnknownNameError


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
def methods(names):
    """List the registered offboard methods and their options (give NAMEs to show only those).

    Options are set with `-O KEY=VALUE` (repeatable) on `evaluate` and `refine`, e.g.
    `occbench evaluate --method average-fusion -O n=10`; `X | None` options take `null`, bool options true/false.
    """
    from occbench.methods import available_methods, method_class, option_infos
    from occbench.methods.options import format_default

    known = available_methods()
    for name in names:
        if name not in known:
            raise click.BadParameter(str(UnknownNameError("method", name, known)), param_hint="'NAME'")
    for i, name in enumerate(names or known):
        try:
            cls = method_class(name)
        except Exception as e:  # noqa: BLE001 - a broken third-party entry point must not hide the others
            click.echo(f"{name}\n  (cannot load: {e})\n")
            continue
        click.echo(name)
        if cls.description:
            click.echo(f"  {cls.description}")
        infos = option_infos(cls)
        if not infos:
            click.echo("  options: none")
        else:
            click.echo("  options (-O KEY=VALUE):")
            w_name, w_type = max(len(o.name) for o in infos), max(len(o.type) for o in infos)
            for o in infos:
                click.echo(f"    {o.name:{w_name}}  {o.type:{w_type}}  default {format_default(o.default)}")
        if callable(getattr(cls, "refine_top2", None)):
            click.echo("  top-2 scores: yes (refine_top2; `occbench autolabel --pl-format top2`)")
        click.echo("")
