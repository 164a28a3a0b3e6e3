"""Where the inputs come from: hypothesis strategies (``strategies``), the regimes written once
for every sampler (``regimes``), seeded values of a format (``sampling``) and the chunks of a
campaign (``chunks``)."""
