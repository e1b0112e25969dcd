"""The contrastive core of contrasuite.

`shared` depends on torch and numpy only; the domain packages (`medical`, `recsys`,
`vision`) import it, never the other way round.

Shape symbols used in every docstring of the suite:

* ``B``: batch size, ``V``: views per sample, ``D``: embedding dimension,
* ``M``: number of candidates, ``K``: number of prototypes / queue entries,
* ``C``: classes, ``L``: sequence length, ``N_items``: catalogue size,
* ``H``/``W``/``Z``: spatial sizes.
"""

from shared.errors import InputError

__all__ = ["InputError"]
