"""`python -m poster` runs the CLI."""

from poster.cli import main

if __name__ == "__main__":
    main()
