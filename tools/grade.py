"""Moved: this is now ``llmcourse-grade`` (llmcourse.teaching.grade); kept as a shim."""

import sys

from llmcourse.teaching.grade import main

if __name__ == "__main__":
    sys.exit(main())
