"""``python -m seqrec``: the same command line as the ``seqrec`` console script."""

from seqrec.cli import main

if __name__ == "__main__":
    main()
