"""Job arguments: the argparse parser and Glue's argument lists.

CLI beats YAML (:mod:`fsmigrate.settings` merges them). Glue reserves `--conf`, so `--config` is
accepted too. Arguments that are not ours (Glue passes many, as `--name value` pairs, in any
order) are ignored, except near-misses of our own options, which are refused with a suggestion.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import re

from .errors import BadInput
from .write import AUTO, WRITE_APIS

WRITE_API_CHOICES = (AUTO, *WRITE_APIS)
# `--conf spark.x=y` is Glue's (or a user's) Spark setting, not our YAML path. A path may hold
# '=' too (s3://b/dt=2024/conf.yaml), but not before its first '/' or '.'-free key part.
SPARK_CONF_VALUE = re.compile(r"^[A-Za-z_][\w.\-]*=")

log = logging.getLogger(__name__)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print a usage block and exit
        raise BadInput(f"{message}: run with --help to see the options")


def argument_parser(prog: str = "migrate.py") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="Migrate records between SageMaker Feature Store feature groups with Spark.",
        allow_abbrev=False,  # `--dry` must not silently mean --dry-run
    )
    # Repeatable: Glue may pass `--conf spark.x=y` (its own) before or after ours.
    p.add_argument("--conf", "--config", dest="conf", metavar="PATH_OR_S3_URI", action="append",
                   help="YAML settings file (local path or s3:// URI); a key=value is a Spark "
                        "setting and ignored")
    p.add_argument("--source", help="source feature group name")
    p.add_argument("--target", help="target feature group name")
    # Flags take an optional value because Glue passes every job parameter as `--key value`.
    flag = {"nargs": "?", "const": True, "type": parse_bool, "default": None}
    p.add_argument("--clear-target", **flag, help="delete what the target holds before writing")
    p.add_argument("--yes", **flag, help="confirm --clear-target without a prompt")
    p.add_argument("--dry-run", **flag, help="print the plan, write plan.json, write nothing")
    p.add_argument("--batch-size", type=int, help="records per worker hand-off (default 100)")
    p.add_argument("--max-workers", type=int, help="writer threads per partition (default 4)")
    p.add_argument("--max-tps", type=float, help="records per second across the whole job")
    p.add_argument("--write-api", choices=WRITE_API_CHOICES,
                   help="BatchWriteRecord, PutRecord or auto")
    p.add_argument("--filter-query", metavar="SQL",
                   help="Spark SQL boolean expression on the latest state (leading WHERE allowed)")
    p.add_argument("--resume-from", metavar="RECORD_ID",
                   help="migrate only record ids after this one (ascending string order)")
    p.add_argument("--run-id", help="name of this run's folder under output.uri")
    p.add_argument("--resume", metavar="RUN_ID", help="finish an earlier run under its plan")
    p.add_argument("--retry-failures", metavar="RUN_ID_OR_URI",
                   help="re-send exactly the records in an earlier run's failure files")
    p.add_argument("--preflight", **flag,
                   help="only check versions, permissions and storage, print them, exit")
    p.add_argument("--verify", nargs="?", const="all", default=None, metavar="none|sample:N|all",
                   help="read the target back and compare (alone: all); with --resume of a "
                        "finished run: verify it again without writing")
    return p


def _squash(option: str) -> str:
    """`--Filter_Query` and `--filter-query` alike: lower case, no dashes or underscores."""
    return option.lower().replace("-", "").replace("_", "")


def _near_miss(option: str, ours: list[str]) -> str | None:
    """The option of ours that `option` was probably meant to be, if any."""
    by_squash = {_squash(o): o for o in ours}
    squashed = _squash(option)
    if squashed in by_squash:
        return by_squash[squashed]
    close = difflib.get_close_matches(squashed, list(by_squash), n=1, cutoff=0.85)
    return by_squash[close[0]] if close else None


def _check_unknown(unknown: list[str], ours: list[str]) -> None:
    """Not ours: Glue's `--name value` pairs pass (logged); near-misses and strays are refused."""
    expects_value = False
    for arg in unknown:
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            guess = _near_miss(name, ours)
            if guess:
                raise BadInput(f"unknown option {name}: did you mean {guess}?")
            log.debug("ignoring argument %s (not an fsmigrate option)", name)
            expects_value = "=" not in arg
        elif expects_value:
            expects_value = False  # the value of the ignored option before it
        else:
            raise BadInput(f"unexpected argument {arg!r}: options are --name value pairs, "
                           "run with --help to see them")


def _conf_path(values: list[str] | None) -> str | None:
    """Our YAML among the --conf/--config values; Spark's key=value settings are skipped."""
    paths = [v for v in values or [] if not SPARK_CONF_VALUE.match(v)]
    for value in values or []:
        if SPARK_CONF_VALUE.match(value):
            log.debug("ignoring --conf %s (a Spark setting, not a conf file)", value)
    if len(set(paths)) > 1:
        raise BadInput(f"two conf files given ({paths[0]}, {paths[1]}): pass one --conf")
    return paths[0] if paths else None


def parse_args(argv: list[str], prog: str = "migrate.py") -> argparse.Namespace:
    parser = argument_parser(prog)
    ns, unknown = parser.parse_known_args(argv)
    ours = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    _check_unknown(unknown, ours)
    ns.conf = _conf_path(ns.conf)
    return ns
