"""Entry points: declare options, build the Beam graph, run it."""
