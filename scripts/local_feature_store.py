#!/usr/bin/env python3
"""Local Amazon SageMaker Feature Store emulator (the package feature_store_emulator/).

    python scripts/local_feature_store.py --port 0 --data-dir /tmp/fs [--host 127.0.0.1]

Prints a line containing ``ready`` once listening. Admin endpoints (not AWS, no auth):
``POST /_emulator/flush``, ``GET /_emulator/stats``, ``GET|POST /_emulator/faults``,
``POST /_emulator/reset``, ``GET /_emulator/health``.
"""

import sys

from feature_store_emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
