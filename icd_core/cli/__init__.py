"""The ``icd`` command line. ``--help`` and ``--version`` import neither torch nor plugins."""

from __future__ import annotations

import sys
import traceback

import click

from icd_core.cli.console import shown
from icd_core.cli.versions import version_text
from icd_core.contract.errors import IcdError


class IcdGroup(click.Group):
    """Maps icd errors to one line and an exit code (2 usage/config, 1 otherwise)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except IcdError as exc:
            if ctx.meta.get("icd.debug"):
                traceback.print_exc()
            click.echo(f"icd: error: {shown(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("icd: interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            if ctx.meta.get("icd.debug"):
                raise
            click.echo(f"icd: internal error: {type(exc).__name__}: {shown(str(exc))} (run with --debug for the "
                       f"traceback)", err=True)
            ctx.exit(1)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_text())
        ctx.exit(0)


@click.group(cls=IcdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and the installed plugins (without loading them).")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """icd: re-optimise the memory layout of neural-network inference.

    Build a co-access matrix W, find a permutation π, apply S/Q/K transforms, re-permute,
    measure, report — and roll back whatever fails or gets worse.
    """
    ctx.meta["icd.debug"] = debug


def _register_commands() -> None:
    from icd_core.cli.bridge import bridge
    from icd_core.cli.doctor import doctor
    from icd_core.cli.export import export
    from icd_core.cli.plugins import plugins
    from icd_core.cli.reports import compare, report
    from icd_core.cli.run import run
    from icd_core.cli.solve import solve
    from icd_core.cli.sweep import sweep

    for command in (run, sweep, solve, bridge, export, plugins, report, compare, doctor):
        cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(cli.main(args=argv, prog_name="icd", standalone_mode=True))
