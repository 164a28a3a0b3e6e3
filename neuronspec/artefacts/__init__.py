"""What the runs write: the check report (``report``; as JUnit XML for CI, ``junit``), the
tolerance tables of spec/tolerances.md (``tables``), the pictures (``plots``), the peers'
tolerances and wrong results they are compared on (``peers``) and the measurement records of
spec/data (``records``)."""
