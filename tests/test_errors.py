"""Errors that end the job, and what an executor raised, brought back out of Spark's wrapping."""

from __future__ import annotations

from fsmigrate.errors import Aborted, executor_error_line, from_executor


def test_spark_job_errors_are_reported_by_their_python_line():
    wrapped = RuntimeError(
        "An error occurred while calling o91.foreachPartition.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: ...\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "worker.py", line 1, in main\n'
        "ModuleNotFoundError: No module named 'fsmigrate'\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handle(PythonRunner.scala:572)\n")
    assert executor_error_line(wrapped) == "ModuleNotFoundError: No module named 'fsmigrate'"
    assert executor_error_line(RuntimeError("plain\nmore")) == "plain"


def test_our_aborted_comes_back_out_of_the_spark_wrapping():
    wrapped = RuntimeError(
        "An error occurred while calling o91.foreachPartition.\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        "fsmigrate.errors.Aborted: PutRecord on feature group 'g' failed with AccessForbidden: no\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handle(PythonRunner.scala:572)\n")
    unwrapped = from_executor(wrapped)
    assert isinstance(unwrapped, Aborted) and unwrapped.exit_code == 3
    assert str(unwrapped) == "PutRecord on feature group 'g' failed with AccessForbidden: no"
    other = RuntimeError("ModuleNotFoundError: No module named 'fsmigrate'")
    assert from_executor(other) is other


def test_a_python_worker_that_died_is_named_as_such():
    wrapped = RuntimeError(
        "An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 3 in stage 4.0 "
        "failed 4 times, most recent failure: Lost task 3.3 in stage 4.0 (TID 21) (host executor "
        "driver): org.apache.spark.SparkException: Python worker exited unexpectedly (crashed)\n"
        "Caused by: java.io.EOFException\n")
    assert executor_error_line(wrapped) == (
        "the Python worker running a task died in each of its 4 attempts (killed, or out of "
        "memory; spark.task.maxFailures sets the attempts)")
