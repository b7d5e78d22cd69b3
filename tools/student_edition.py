"""Moved: this is now ``llmcourse-student`` (llmcourse.teaching.student_edition); kept as a shim."""

import sys

from llmcourse.teaching.student_edition import main

if __name__ == "__main__":
    sys.exit(main())
