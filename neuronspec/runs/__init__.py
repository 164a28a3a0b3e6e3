"""The commands that run something: ``check`` (the conformance report), ``sweep`` (seeded
cases through the batch path), ``soundness`` (every admitted evaluation against its bound),
``crosscheck`` (batch verdict against the scalar one), ``vectors``, ``replay`` and ``example``;
``campaign`` spreads seeded chunks over processes and ``tally`` is what a run counts."""
