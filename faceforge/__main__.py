"""``python -m faceforge``: the same command group as the ``faceforge`` entry point."""

from faceforge.cli import main

if __name__ == "__main__":
    main(prog_name="faceforge")
