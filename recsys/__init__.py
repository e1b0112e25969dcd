"""Recommendation pipelines (MCLRec on RecBole, offline evaluation). Built on :mod:`shared`."""
