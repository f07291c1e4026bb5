"""``python -m rlcl.train ALGO ENV``: the command line (its parsing and config resolution live
in rlcl/cli.py). One run trains through rlcl/run.py's ``train``; ``--seeds`` or ``--grid``
trains a population of agents in one process (rlcl/population.py).
Nothing imports this module but rlcl.testing, late: it is an entry point (docs/architecture.md).
"""

from __future__ import annotations

import sys

from rlcl.cli import parse_command, print_population, print_summary
from rlcl.errors import RlclError
from rlcl.run import Result, Run, make_agent, train, update_flop  # noqa: F401 (the public names)

def main(argv: list[str] | None = None) -> int:
    """``python -m rlcl.train`` (and the ``rlcl-train`` script): one line and exit code 2 for
    bad input, 3 for a divergence the guard could not recover from."""
    try:
        command = parse_command(argv)
        if command.population:  # --seeds or --grid, or --resume of a population folder
            from rlcl.population import train_population

            pop, code = train_population(command)
            print_population(pop)
            return code
        if command.cfg is None:  # --list or --device list: printed already
            return 0
        result = train(command.cfg, resume=command.resume)
    except RlclError as exc:
        print(f"rlcl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rlcl: interrupted", file=sys.stderr)
        return 130
    print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
