"""Time fastce and every installed peer on the same arrays, in one run, and print the table.

``python -m bench.compare [--workloads W1a,W3] [--repeat 7] [--json FILE] [--plot FILE.png]
[--memory] [--scale 0.01]`` from the repository root; the same as ``fastce bench`` and
``python -m fastce.benchmark`` (the code lives in ``fastce/benchmark.py`` so that an installed
package can run it). ``--help`` lists every option.
"""

import sys

from fastce.benchmark import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.compare"))
