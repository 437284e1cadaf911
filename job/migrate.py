"""Spark job entry point: `spark-submit job/migrate.py --conf conf/prod.yaml ...`, or a Glue job.

The library is the `fsmigrate` package beside this file (or in --py-files/--extra-py-files).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fsmigrate.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
