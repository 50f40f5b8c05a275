"""Interaction logs → validated tables → chronological per-user sequences → leakage-proof splits.

The only package of seqrec where pandas / polars / pyarrow appear.
"""
