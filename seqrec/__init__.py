"""seqrec: sequential recommendation with transformers (eSASRec and its modular parts)."""

__version__ = "0.1.0"
