"""Moved: this is now ``llmcourse-guide`` (llmcourse.teaching.guide); kept as a shim."""

import sys

from llmcourse.teaching.guide import main

if __name__ == "__main__":
    sys.exit(main())
