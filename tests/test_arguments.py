"""Job arguments: Glue's argument lists, near-misses of our options, flags and `--conf` values."""

from __future__ import annotations

import pytest
from fsmigrate.settings import load_settings
from test_settings import BASE, bad_input


def test_glue_added_arguments_are_ignored():
    s = load_settings([
        "--JOB_NAME", "x", "--job-bookmark-option", "y", "--TempDir", "s3://tmp-bucket/tmp",
        *BASE, "--JOB_RUN_ID", "jr_123", "--enable-metrics", "true", "--batch-size", "7",
    ])
    assert (s.source, s.target) == ("src-group", "tgt-group")
    assert s.migration.batch_size == 7


def test_near_miss_of_our_option_is_bad_input_with_a_suggestion():
    message = bad_input([*BASE, "--batchsize", "5"])
    assert "--batchsize" in message and "did you mean --batch-size?" in message


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["--dryrun"], "--dry-run"),
        (["--filter_query", "x > 1"], "--filter-query"),
        (["--Max-Workers", "3"], "--max-workers"),
        (["--clear_target=true"], "--clear-target"),
        (["--retry-failure", "r1"], "--retry-failures"),
    ],
)
def test_near_misses_are_refused(argv, suggestion):
    assert f"did you mean {suggestion}?" in bad_input([*BASE, *argv])


def test_abbreviations_of_our_options_are_refused():
    assert "did you mean --dry-run?" in bad_input([*BASE, "--dry-ru"])


def test_stray_positional_is_bad_input():
    assert "unexpected argument 'b'" in bad_input(["--source", "a", "b", "--target", "c"])


# What the Glue console and `aws glue start-job-run` pass to a Glue 5.0 job script: the job's
# default arguments, Glue's own, the run's arguments, in an order Glue chooses.
GLUE_CONSOLE_DEFAULTS = [
    "--enable-metrics", "true", "--enable-spark-ui", "true",
    "--spark-event-logs-path", "s3://aws-glue-assets-1/sparkHistoryLogs/",
    "--enable-job-insights", "true", "--enable-observability-metrics", "true",
    "--enable-glue-datacatalog", "true", "--enable-continuous-cloudwatch-log", "true",
    "--continuous-log-logGroup", "/aws-glue/jobs/logs-v2",
    "--continuous-log-logStreamPrefix", "fsmigrate", "--continuous-log-conversionPattern",
    "%d %p %c{1}: %m%n", "--job-bookmark-option", "job-bookmark-disable", "--job-language",
    "python", "--TempDir", "s3://aws-glue-assets-1/temporary/", "--SECURITY_CONFIGURATION",
    "sec-1", "--write-shuffle-files-to-s3", "true", "--write-shuffle-spills-to-s3", "true",
    "--additional-python-modules", "boto3>=1.44.8,botocore>=1.44.8",
    "--python-modules-installer-option", "--upgrade",
    "--extra-py-files", "s3://b/fsmigrate/fsmigrate.zip", "--enable-auto-scaling", "true",
    "--datalake-formats", "iceberg", "--user-jars-first", "true",
]
GLUE_RUN = ["--JOB_ID", "j_0123", "--JOB_RUN_ID", "jr_0123abc", "--JOB_NAME", "fsmigrate"]


@pytest.mark.parametrize("order", ["glue-first", "ours-first", "interleaved", "reversed-pairs"])
def test_realistic_glue_argument_lists(conf, order):
    path = conf("migration:\n  batch_size: 42\n")
    ours = ["--config", path, *BASE, "--max-workers", "3", "--dry-run", "true"]
    spark_conf = ["--conf", "spark.sql.shuffle.partitions=8 --conf spark.x=y"]
    pairs = [GLUE_CONSOLE_DEFAULTS[i:i + 2] for i in range(0, len(GLUE_CONSOLE_DEFAULTS), 2)]
    if order == "glue-first":
        argv = [*GLUE_RUN, *GLUE_CONSOLE_DEFAULTS, *spark_conf, *ours]
    elif order == "ours-first":
        argv = [*ours, *spark_conf, *GLUE_CONSOLE_DEFAULTS, *GLUE_RUN]
    elif order == "interleaved":
        argv = [*GLUE_RUN[:2], *ours[:2], *spark_conf, *GLUE_CONSOLE_DEFAULTS[:10], *ours[2:6],
                *GLUE_CONSOLE_DEFAULTS[10:], *GLUE_RUN[2:], *ours[6:]]
    else:
        argv = [*ours, *[a for pair in reversed(pairs) for a in pair], *GLUE_RUN, *spark_conf]
    s = load_settings(argv)
    assert (s.source, s.target) == ("src-group", "tgt-group")
    assert (s.migration.batch_size, s.migration.max_workers, s.migration.dry_run) == (42, 3, True)


@pytest.mark.parametrize("where", ["before", "after"])
def test_glue_spark_conf_before_or_after_config(conf, where):
    path = conf("migration:\n  batch_size: 42\n")
    spark_conf = ["--conf", "spark.driver.memory=4g"]
    ours = ["--config", path, *BASE]
    argv = [*spark_conf, *ours] if where == "before" else [*ours, *spark_conf]
    assert load_settings(argv).migration.batch_size == 42


def test_conf_path_with_equals_sign_is_a_path(conf, tmp_path):
    folder = tmp_path / "dt=2024-01-01"
    folder.mkdir()
    path = folder / "job.yaml"
    path.write_text("migration:\n  batch_size: 9\n")
    assert load_settings(["--conf", str(path), *BASE]).migration.batch_size == 9


def test_two_different_conf_files_are_refused(conf):
    assert "two conf files" in bad_input(["--conf", conf(""), "--config", conf(""), *BASE])


def test_preflight_flag():
    assert load_settings([*BASE, "--preflight"]).preflight is True
    assert load_settings([*BASE, "--preflight", "false"]).preflight is False
    assert load_settings(BASE).preflight is False


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], False),
        (["--dry-run"], True),
        (["--dry-run", "true"], True),
        (["--dry-run", "false"], False),
        (["--dry-run", "True"], True),
        (["--dry-run", "0"], False),
    ],
)
def test_dry_run_flag_forms(args, expected):
    assert load_settings([*BASE, *args]).migration.dry_run is expected


def test_bare_flag_before_another_option():
    s = load_settings(["--dry-run", "--clear-target", "--yes", *BASE])
    assert s.migration.dry_run is True
    assert s.migration.clear_target is True
    assert s.yes is True


def test_flags_with_glue_style_values():
    s = load_settings([*BASE, "--clear-target", "true", "--yes", "false"])
    assert s.migration.clear_target is True
    assert s.yes is False
