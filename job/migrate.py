"""Spark job entry point: `spark-submit job/migrate.py --conf conf/prod.yaml ...`, or a Glue job.

The library is the `fsmigrate` package beside this file (or in --py-files/--extra-py-files).
This file stays valid for old interpreters (no annotations, no 3.10+ syntax) so that a too-old
Python (EMR 7's default python3 is 3.9) gets one line telling how to pick 3.11, not a traceback.
"""

import os
import sys

NEEDED = (3, 11)

if __name__ == "__main__" and tuple(sys.version_info[:2]) < NEEDED:
    sys.stderr.write(
        f"error: fsmigrate needs Python {NEEDED[0]}.{NEEDED[1]} or newer, this is "
        f"{sys.version_info[0]}.{sys.version_info[1]} ({sys.executable}): point Spark at a 3.11 "
        "interpreter with PYSPARK_PYTHON (EMR 7.1+: the spark-env classification "
        "PYSPARK_PYTHON=/usr/bin/python3.11; EMR Serverless: the packed environment, "
        "spark.archives=...#environment)\n")
    sys.exit(2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fsmigrate.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
